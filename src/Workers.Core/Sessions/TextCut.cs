namespace Workers.Core.Sessions;

/// <summary>Shortens text without splitting a character: a cut between the two halves of a surrogate pair (an emoji,
/// say) leaves a string that is not valid UTF-16, and PostgreSQL's client refuses to encode it, failing the whole
/// transaction that stores it.</summary>
public static class TextCut
{
    /// <summary>At most <paramref name="maxLength"/> UTF-16 units of <paramref name="text"/>, one fewer when the cut
    /// would fall inside a surrogate pair.</summary>
    public static string Prefix(string text, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length <= maxLength)
        {
            return text;
        }

        return char.IsHighSurrogate(text[maxLength - 1]) ? text[..(maxLength - 1)] : text[..maxLength];
    }
}
