using System.ComponentModel.DataAnnotations.Schema;

namespace Workers.Core.Sessions;

[Table("sessions")]
public sealed class Session
{
    [Column("id")] public Guid Id { get; set; }
    [Column("owner_id")] public string OwnerId { get; set; } = "";
    [Column("title")] public string Title { get; set; } = "";
    [Column("created_at")] public DateTimeOffset CreatedAt { get; set; }
    [Column("last_active_at")] public DateTimeOffset LastActiveAt { get; set; }
    [Column("turn_seq")] public long TurnSeq { get; set; }
    [Column("event_seq")] public long EventSeq { get; set; }

    /// <summary>The session's own system prompt; null: the deployment's.</summary>
    [Column("system_prompt")] public string? SystemPrompt { get; set; }

    /// <summary>The session's sampling temperature; null: the deployment's.</summary>
    [Column("temperature")] public float? Temperature { get; set; }

    /// <summary>The name of the session's model; null: the deployment's default.</summary>
    [Column("model")] public string? Model { get; set; }

    /// <summary>The tool servers the session's turns offer the model; null: the deployment's default set.</summary>
    [Column("tools")] public string[]? Tools { get; set; }
}
