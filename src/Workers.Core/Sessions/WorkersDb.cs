using Microsoft.EntityFrameworkCore;

namespace Workers.Core.Sessions;

/// <summary>
/// The session store. Only <see cref="RlsScope"/> creates it, bound to a transaction whose first command set the
/// caller's context. The query filters repeat the row-level security policies: a second layer, not the boundary.
/// </summary>
public sealed class WorkersDb(DbContextOptions<WorkersDb> options) : DbContext(options)
{
    public string UserId { get; internal set; } = "";

    public Guid? SessionId { get; internal set; }

    public DbSet<Session> Sessions => Set<Session>();

    public DbSet<Turn> Turns => Set<Turn>();

    public DbSet<InboxEntry> Inbox => Set<InboxEntry>();

    public DbSet<SessionNote> Notes => Set<SessionNote>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        ArgumentNullException.ThrowIfNull(modelBuilder);
        modelBuilder.HasDefaultSchema("workers");
        modelBuilder.Entity<Session>().HasQueryFilter(s => s.OwnerId == UserId);
        modelBuilder.Entity<Turn>(e =>
        {
            e.HasKey(t => new { t.SessionId, t.TurnNo });
            e.HasQueryFilter(t => t.OwnerId == UserId && t.SessionId == SessionId);
        });
        modelBuilder.Entity<InboxEntry>(e =>
        {
            e.HasKey(i => new { i.SessionId, i.RequestId });
            e.HasQueryFilter(i => i.OwnerId == UserId && i.SessionId == SessionId);
        });
        modelBuilder.Entity<SessionNote>(e =>
        {
            e.HasKey(n => new { n.SessionId, n.Key });
            e.HasQueryFilter(n => n.OwnerId == UserId && n.SessionId == SessionId);
        });
    }
}
