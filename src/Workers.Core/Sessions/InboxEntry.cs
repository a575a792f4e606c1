using System.ComponentModel.DataAnnotations.Schema;

namespace Workers.Core.Sessions;

/// <summary>A request id already seen; a terminal status means a redelivery is acknowledged without a second reply.</summary>
[Table("inbox")]
public sealed class InboxEntry
{
    [Column("session_id")] public Guid SessionId { get; set; }
    [Column("request_id")] public Guid RequestId { get; set; }
    [Column("owner_id")] public string OwnerId { get; set; } = "";
    [Column("status")] public string Status { get; set; } = TurnStatus.Started;
    [Column("attempts")] public int Attempts { get; set; }
    [Column("updated_at")] public DateTimeOffset UpdatedAt { get; set; }
}
