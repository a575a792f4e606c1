using System.ComponentModel.DataAnnotations.Schema;

namespace Workers.Core.Sessions;

/// <summary>One exchange: the user's message and the agent's reply, complete, cancelled or failed.</summary>
[Table("turns")]
public sealed class Turn
{
    [Column("session_id")] public Guid SessionId { get; set; }
    [Column("turn_no")] public long TurnNo { get; set; }
    [Column("owner_id")] public string OwnerId { get; set; } = "";
    [Column("request_id")] public Guid RequestId { get; set; }
    [Column("user_text")] public string UserText { get; set; } = "";
    [Column("reply_text")] public string ReplyText { get; set; } = "";
    [Column("status")] public string Status { get; set; } = TurnStatus.Complete;
    [Column("error_code")] public string? ErrorCode { get; set; }
    [Column("prompt_tokens")] public int PromptTokens { get; set; }
    [Column("completion_tokens")] public int CompletionTokens { get; set; }

    /// <summary>The message and reply as history for later turns, in the model's tokens; null for turns from before
    /// they were counted.</summary>
    [Column("tokens")] public int? Tokens { get; set; }

    /// <summary>The configured provider that answered (<c>offline</c>, <c>openai</c>); null for turns from before it was kept.</summary>
    [Column("provider")] public string? Provider { get; set; }

    [Column("model")] public string? Model { get; set; }

    /// <summary>Prompt tokens the provider served from its cache (included in <see cref="PromptTokens"/>).</summary>
    [Column("cached_tokens")] public int CachedTokens { get; set; }

    /// <summary>In micro-dollars, from the provider's configured prices.</summary>
    [Column("cost_micros")] public long CostMicros { get; set; }
    [Column("first_seq")] public long FirstSeq { get; set; }
    [Column("last_seq")] public long LastSeq { get; set; }
    [Column("started_at")] public DateTimeOffset StartedAt { get; set; }
    [Column("completed_at")] public DateTimeOffset CompletedAt { get; set; }

    /// <summary>The broker login that published the request (its AMQP user-id, checked by the broker): who asserted
    /// <see cref="OwnerId"/>. Null for turns from before it was recorded.</summary>
    [Column("producer")] public string? Producer { get; set; }

    /// <summary>The tool calls of the turn as a JSON array (call id, tool, arguments, the result the model saw, status);
    /// null when the model called none.</summary>
    [Column("tool_calls", TypeName = "jsonb")] public string? ToolCalls { get; set; }

    /// <summary>The turn_no of the version that replaced this turn (regenerate, edit); null while it is current.</summary>
    [Column("superseded_by")] public long? SupersededBy { get; set; }
}
