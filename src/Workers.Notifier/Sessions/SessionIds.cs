using Workers.Contracts;
using Workers.Core.Sessions;

namespace Workers.Notifier.Sessions;

/// <summary>Ids arrive as text; they are parsed here, at the edge, and only ever reach SQL as typed parameters.</summary>
public static class SessionIds
{
    public static Guid Parse(string? text, string name = "sessionId") =>
        text is { Length: 36 } && Guid.TryParseExact(text, "D", out var id)
            ? id
            : throw new ChatErrorException(ErrorCodes.InvalidRequest, $"{name} must be a UUID like 6f1c1e9a-6a43-4b8e-9d0e-3c2b1a000001");

    public static Guid? ParseOptional(string? text, string name) => string.IsNullOrEmpty(text) ? null : Parse(text, name);
}
