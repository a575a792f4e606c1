using Workers.Contracts;

namespace Workers.Notifier.Chat;

/// <summary>
/// What the browser receives through the hub's <c>event</c> callback: the bus event's fields plus <c>type</c>.
/// A resumed in-flight turn arrives as one <c>ReplyDelta</c> with <c>snapshot: true</c>, whose text is the whole
/// reply so far and replaces what the client had for that request.
/// </summary>
public sealed record ClientEvent(string Type, Guid SessionId, Guid RequestId, string UserId, long Seq)
{
    public string? Text { get; init; }

    public bool? Snapshot { get; init; }

    public string? PartialText { get; init; }

    public string? Tool { get; init; }

    public string? Status { get; init; }

    public string? Code { get; init; }

    public string? Message { get; init; }

    public int? PromptTokens { get; init; }

    public int? CompletionTokens { get; init; }

    public double? FirstTokenMs { get; init; }

    public double? TotalMs { get; init; }

    /// <summary>When the worker published the event (UTC), for clients and benchmarks measuring delivery lag.</summary>
    public DateTime? SentAt { get; init; }

    public bool IsFinal => Type is nameof(TurnCompleted) or nameof(TurnFailed) or nameof(TurnCancelled);

    public static ClientEvent From(object message) => message switch
    {
        TurnStarted e => new(nameof(TurnStarted), e.SessionId, e.RequestId, e.UserId, e.Seq),
        ReplyDelta e => new(nameof(ReplyDelta), e.SessionId, e.RequestId, e.UserId, e.Seq) { Text = e.Text },
        ToolInvoked e => new(nameof(ToolInvoked), e.SessionId, e.RequestId, e.UserId, e.Seq) { Tool = e.Tool, Status = e.Status },
        TurnCompleted e => new(nameof(TurnCompleted), e.SessionId, e.RequestId, e.UserId, e.Seq)
        {
            Text = e.Text, PromptTokens = e.PromptTokens, CompletionTokens = e.CompletionTokens, FirstTokenMs = e.FirstTokenMs,
            TotalMs = e.TotalMs,
        },
        TurnFailed e => new(nameof(TurnFailed), e.SessionId, e.RequestId, e.UserId, e.Seq) { Code = e.Code, Message = e.Message },
        TurnCancelled e => new(nameof(TurnCancelled), e.SessionId, e.RequestId, e.UserId, e.Seq) { PartialText = e.PartialText },
        _ => throw new ArgumentException($"not a reply event: {message.GetType().Name}", nameof(message)),
    };
}
