namespace Workers.Contracts;

/// <summary>Limits of the wire contract that every producer and consumer applies the same way.</summary>
public static class ChatLimits
{
    /// <summary>Longest accepted message text, in UTF-16 characters.</summary>
    public const int MaxTextLength = 16_000;

    /// <summary>Longest accepted user id.</summary>
    public const int MaxUserIdLength = 128;

    /// <summary>Longest accepted system prompt of a session, in UTF-16 characters.</summary>
    public const int MaxSystemPromptLength = 8_000;

    /// <summary>The sampling temperature a session may ask for: 0 to this (a deployment may allow less).</summary>
    public const double MaxTemperature = 2.0;

    /// <summary>Whether <paramref name="name"/> can name a model: a letter or digit, then up to 63 letters, digits,
    /// <c>.</c>, <c>_</c> or <c>-</c> (ASCII). Whether a deployment has such a model is the worker's to say.</summary>
    public static bool IsModelName(string? name) =>
        name is { Length: >= 1 and <= 64 } && char.IsAsciiLetterOrDigit(name[0])
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>Most tool servers a session may enable.</summary>
    public const int MaxToolServers = 16;

    /// <summary>Whether <paramref name="name"/> can name a tool server (an MCP server a deployment configures): an ASCII
    /// letter, then up to 31 letters, digits or <c>_</c>; the model sees its tools as <c>name-tool</c>.</summary>
    public static bool IsToolServerName(string? name) =>
        name is { Length: >= 1 and <= 32 } && char.IsAsciiLetter(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    /// <summary>The error for a list of tool server names that <see cref="IsToolServerName"/> or the count refuses, or null.</summary>
    public static string? CheckToolServers(IReadOnlyCollection<string?> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        return names.Count > MaxToolServers ? $"tools may name at most {MaxToolServers} tool servers"
            : names.All(IsToolServerName) ? null
            : "tools must be tool servers' names: a letter, then up to 31 letters, digits or '_'";
    }
}
