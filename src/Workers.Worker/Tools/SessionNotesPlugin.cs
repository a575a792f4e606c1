using System.ComponentModel;
using Microsoft.EntityFrameworkCore;
using Microsoft.SemanticKernel;
using Workers.Core.Sessions;

namespace Workers.Worker.Tools;

/// <summary>
/// The agent's notes for the current session. Bound to one turn's user and session when the turn starts: no function
/// takes a user or session id, so nothing a prompt says can point it at another session's notes, and every call runs
/// in its own row-level-security scope.
/// </summary>
public sealed class SessionNotesPlugin(SessionStore store, string userId, Guid sessionId)
{
    [KernelFunction("remember"), Description("Stores a note for this chat session under a short key.")]
    public async Task<string> RememberAsync(
        [Description("Short name of the note")] string key, [Description("What to remember")] string value,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        key = key.Trim().ToLowerInvariant();
        if (key.Length is 0 or > 100 || value.Length > 4000)
        {
            return "Not stored: the key must be 1 to 100 characters and the value at most 4000.";
        }

        await using var scope = await store.BeginAsync(userId, sessionId, cancellationToken);
        await using var batch = scope.Batch();
        batch.Add(
            """
            INSERT INTO workers.session_notes (session_id, key, owner_id, value) VALUES ($1, $2, $3, $4)
            ON CONFLICT (session_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
            """, sessionId, key, userId, value);
        await batch.ExecuteNonQueryAsync(cancellationToken);
        await scope.CommitAsync(cancellationToken);
        return $"Stored note '{key}'.";
    }

    [KernelFunction("recall"), Description("Reads the note of this chat session stored under a key.")]
    public async Task<string> RecallAsync([Description("Short name of the note")] string key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        key = key.Trim().ToLowerInvariant();
        await using var scope = await store.BeginAsync(userId, sessionId, cancellationToken);
        var db = await scope.DbAsync(cancellationToken);
        var note = await db.Notes.AsNoTracking().Where(n => n.Key == key).Select(n => n.Value).FirstOrDefaultAsync(cancellationToken);
        return note is null ? $"I have no note called '{key}' in this session." : $"{key}: {note}";
    }

    [KernelFunction("list"), Description("Lists the notes of this chat session.")]
    public async Task<string> ListAsync(CancellationToken cancellationToken = default)
    {
        await using var scope = await store.BeginAsync(userId, sessionId, cancellationToken);
        var db = await scope.DbAsync(cancellationToken);
        var notes = await db.Notes.AsNoTracking().OrderBy(n => n.Key).Select(n => n.Key + " = " + n.Value)
            .Take(100).ToListAsync(cancellationToken);
        return notes.Count == 0 ? "none." : string.Join("; ", notes);
    }
}
