using System.ComponentModel.DataAnnotations.Schema;

namespace Workers.Core.Sessions;

[Table("session_notes")]
public sealed class SessionNote
{
    [Column("session_id")] public Guid SessionId { get; set; }
    [Column("key")] public string Key { get; set; } = "";
    [Column("owner_id")] public string OwnerId { get; set; } = "";
    [Column("value")] public string Value { get; set; } = "";
    [Column("updated_at")] public DateTimeOffset UpdatedAt { get; set; }
}
