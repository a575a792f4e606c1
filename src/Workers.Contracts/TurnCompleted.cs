namespace Workers.Contracts;

/// <summary>The turn was persisted. <see cref="Text"/> is the whole reply and supersedes the deltas.</summary>
public sealed record TurnCompleted : IReplyEvent
{
    /// <summary>The session.</summary>
    public required Guid SessionId { get; init; }

    /// <summary>The request answered.</summary>
    public required Guid RequestId { get; init; }

    /// <summary>The session's owner.</summary>
    public required string UserId { get; init; }

    /// <summary>Per-session event number.</summary>
    public required long Seq { get; init; }

    /// <summary>The full reply text, as persisted.</summary>
    public required string Text { get; init; }

    /// <summary>Tokens of the prompt (history and message) as counted by the model.</summary>
    public required int PromptTokens { get; init; }

    /// <summary>Tokens of the reply.</summary>
    public required int CompletionTokens { get; init; }

    /// <summary>From the worker taking the request to the first reply text, in milliseconds.</summary>
    public required double FirstTokenMs { get; init; }

    /// <summary>From the worker taking the request to the commit, in milliseconds.</summary>
    public required double TotalMs { get; init; }
}
