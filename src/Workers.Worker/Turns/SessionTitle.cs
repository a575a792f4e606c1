using System.Text.RegularExpressions;

namespace Workers.Worker.Turns;

/// <summary>The title a session without one gets from its first exchange: the user's first message, on one line, cut at
/// a word within 60 characters. Free and immediate (no model call); a user or client can rename it any time.</summary>
public static partial class SessionTitle
{
    public const int MaxLength = 60;

    public static string? FromFirstMessage(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var line = Whitespace().Replace(message, " ").Trim();
        if (line.Length == 0)
        {
            return null;
        }

        if (line.Length <= MaxLength)
        {
            return line;
        }

        var cut = line.LastIndexOf(' ', MaxLength - 1);
        return (cut > MaxLength / 2 ? line[..cut] : Workers.Core.Sessions.TextCut.Prefix(line, MaxLength - 1)).TrimEnd() + "…";
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
