using Workers.Contracts;

namespace Workers.Core.Sessions;

/// <summary>A refusal with a stable <see cref="ErrorCodes"/> code and a message safe to show to whoever asked.</summary>
public sealed class ChatErrorException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;

    public static ChatErrorException SessionNotFound() =>
        new(ErrorCodes.SessionNotFound, "no such session");
}
