using System.Text.Json;

namespace Workers.Testing;

/// <summary>
/// A reply event read from its MassTransit envelope: <paramref name="SentTime"/> is the envelope's <c>sentTime</c> (the
/// worker's publish), <paramref name="At"/> when the recorder received it.
/// </summary>
public sealed record RecordedEvent(string Type, Guid SessionId, Guid RequestId, string UserId, long Seq, JsonElement Message,
    DateTime SentTime, DateTime At)
{
    public string? Text => Message.TryGetProperty("text", out var t) ? t.GetString()
        : Message.TryGetProperty("partialText", out var p) ? p.GetString() : null;

    public string? Code => Message.TryGetProperty("code", out var c) ? c.GetString() : null;

    /// <summary>A message's contract type and its event, or each delta of a <c>ReplyDeltaBatch</c> as a <c>ReplyDelta</c>
    /// of its own.</summary>
    public static (string Type, IReadOnlyList<RecordedEvent> Events) ParseMessage(ReadOnlySpan<byte> body)
    {
        var received = DateTime.UtcNow;
        using var document = JsonDocument.Parse(body.ToArray());
        var root = document.RootElement;
        var type = root.GetProperty("messageType")[0].GetString()!.Split(':')[^1];
        var message = root.GetProperty("message");
        var sent = root.TryGetProperty("sentTime", out var s) && s.ValueKind == JsonValueKind.String
            ? s.GetDateTime().ToUniversalTime()
            : received;
        return (type, type == "ReplyDeltaBatch"
            ? [.. message.GetProperty("deltas").EnumerateArray().Select(delta => One("ReplyDelta", delta, sent, received))]
            : [One(type, message, sent, received)]);
    }

    private static RecordedEvent One(string type, JsonElement message, DateTime sent, DateTime received) =>
        new(type, message.GetProperty("sessionId").GetGuid(), message.GetProperty("requestId").GetGuid(),
            message.GetProperty("userId").GetString()!, message.GetProperty("seq").GetInt64(), message.Clone(), sent, received);
}
