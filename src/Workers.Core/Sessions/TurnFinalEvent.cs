using Workers.Contracts;

namespace Workers.Core.Sessions;

/// <summary>
/// The event that ends a persisted turn: <c>TurnCompleted</c>, <c>TurnCancelled</c> or <c>TurnFailed</c>. One mapping
/// for the worker (after its commit, and again for a redelivered request already committed) and for the notifier's
/// replay, so a resumed client sees exactly what a live one saw.
/// </summary>
public static class TurnFinalEvent
{
    public const string ModelFailedMessage = "The model did not answer; please try again.";

    /// <param name="turn">A committed turn.</param>
    /// <param name="firstTokenMs">Time to the first token, when this process measured it (0 otherwise).</param>
    /// <param name="totalMs">The turn's duration as measured; by default, from the persisted timestamps.</param>
    public static IReplyEvent Of(Turn turn, double firstTokenMs = 0, double? totalMs = null)
    {
        ArgumentNullException.ThrowIfNull(turn);
        return turn.Status switch
        {
            TurnStatus.Complete => new TurnCompleted
            {
                SessionId = turn.SessionId, RequestId = turn.RequestId, UserId = turn.OwnerId, Seq = turn.LastSeq,
                Text = turn.ReplyText, PromptTokens = turn.PromptTokens, CompletionTokens = turn.CompletionTokens,
                FirstTokenMs = firstTokenMs, TotalMs = totalMs ?? (turn.CompletedAt - turn.StartedAt).TotalMilliseconds,
            },
            TurnStatus.Cancelled => new TurnCancelled
            {
                SessionId = turn.SessionId, RequestId = turn.RequestId, UserId = turn.OwnerId, Seq = turn.LastSeq,
                PartialText = turn.ReplyText,
            },
            _ => new TurnFailed
            {
                SessionId = turn.SessionId, RequestId = turn.RequestId, UserId = turn.OwnerId, Seq = turn.LastSeq,
                Code = turn.ErrorCode ?? ErrorCodes.ModelError, Message = ModelFailedMessage,
            },
        };
    }
}
