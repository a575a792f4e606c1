using System.Collections.Concurrent;
using Microsoft.ML.Tokenizers;

namespace Workers.Worker.Memory;

/// <summary>
/// Tokens as OpenAI's chat models count them (the cookbook's rule, which matches the API's figure for gpt-4o): the
/// text's tokens under the model's tiktoken encoding, plus a fixed framing per message and per request. An estimate
/// for other model families, good enough to keep a prompt under its window with the margin the thresholds leave.
/// </summary>
public static class TokenCount
{
    /// <summary>Per message: <c>&lt;|start|&gt;</c>, the role and <c>&lt;|message|&gt;</c>... and its end.</summary>
    public const int PerMessage = 4;

    /// <summary>Per request: the reply is primed with <c>&lt;|start|&gt;assistant&lt;|message|&gt;</c>.</summary>
    public const int PerRequest = 3;

    // One tokenizer per encoding for the process, created once: loading a vocabulary takes ~200 ms and ~40 MiB, and a
    // worker's first turns start together (a plain GetOrAdd let each of them load its own: 100s of MiB in the soak).
    private static readonly ConcurrentDictionary<string, Lazy<TiktokenTokenizer>> Tokenizers = new(StringComparer.Ordinal);

    public static int Of(string encoding, string text) =>
        Tokenizers.GetOrAdd(encoding, name => new Lazy<TiktokenTokenizer>(() => TiktokenTokenizer.CreateForEncoding(name))).Value
            .CountTokens(text);

    /// <summary>A chat message of <paramref name="text"/>, framing included.</summary>
    public static int Message(string encoding, string text) => PerMessage + Of(encoding, text);

    /// <summary>A stored turn: the user's message and the reply, two messages.</summary>
    public static int Turn(string encoding, string user, string reply) => Message(encoding, user) + Message(encoding, reply);
}
