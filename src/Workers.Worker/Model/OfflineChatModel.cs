using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using Workers.Worker.Memory;

namespace Workers.Worker.Model;

/// <summary>
/// A deterministic model that needs no network. Its answer is built only from the history and message it is handed
/// (and the session's notes tool), so it shows what the worker loaded: it can tell what was said before in this
/// session, and nothing from any other. Notes requests go through the kernel, like a real model's tool calls.
/// Asked to summarise (<see cref="ConversationMemory.Instructions"/>), it keeps the user's messages, each cut short, as
/// a list (the first ones and the latest), so tests can tell what a summary kept.
/// Two directives in a message stand in for a misbehaving provider: <c>#think=MS</c> waits before the first token,
/// <c>#fail</c> throws.
/// </summary>
public sealed partial class OfflineChatModel(IOptions<ModelOptions> options) : IChatCompletionService
{
    private static readonly string[] Filler =
        ["and", "that", "is", "all", "the", "offline", "model", "has", "to", "say", "about", "it", "for", "now"];

    public IReadOnlyDictionary<string, object?> Attributes { get; } = new Dictionary<string, object?> { ["ModelId"] = "offline" };

    public async Task<IReadOnlyList<ChatMessageContent>> GetChatMessageContentsAsync(
        ChatHistory chatHistory, PromptExecutionSettings? executionSettings = null, Kernel? kernel = null,
        CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        await foreach (var chunk in GetStreamingChatMessageContentsAsync(chatHistory, executionSettings, kernel, cancellationToken))
        {
            text.Append(chunk.Content);
        }

        return [new ChatMessageContent(AuthorRole.Assistant, text.ToString())];
    }

    public async IAsyncEnumerable<StreamingChatMessageContent> GetStreamingChatMessageContentsAsync(
        ChatHistory chatHistory, PromptExecutionSettings? executionSettings = null, Kernel? kernel = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(chatHistory);
        var offline = options.Value.Offline;
        var message = chatHistory.LastOrDefault(m => m.Role == AuthorRole.User)?.Content ?? "";
        var summarising = chatHistory.FirstOrDefault()?.Content == ConversationMemory.Instructions;
        // Directives that let demos and tests stand in for a slow or broken provider; off unless enabled, and never read
        // from a summarising call's transcript (an old message's #fail would fail every later turn of its session).
        var directives = offline.Directives == true && !summarising;
        if (directives && Think().Match(message) is { Success: true } think)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(int.Parse(think.Groups[1].Value, CultureInfo.InvariantCulture)), cancellationToken);
        }

        if (directives && message.Contains("#fail", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("the offline model was asked to fail (#fail)");
        }

        // A summary keeps to its MaxTokens, at about 4 characters a token.
        var answer = summarising
            ? Summarize(message, executionSettings is OpenAIPromptExecutionSettings { MaxTokens: > 0 and var max } ? max * 4 : int.MaxValue)
            : await AnswerAsync(chatHistory, kernel, cancellationToken);
        var tokens = Tokenize(answer, offline.Tokens);
        var promptTokens = chatHistory.Sum(m => CountWords(m.Content));
        for (var i = 0; i < tokens.Count; i++)
        {
            if (offline.TokenDelay > TimeSpan.Zero)
            {
                await Task.Delay(offline.TokenDelay, cancellationToken);
            }

            cancellationToken.ThrowIfCancellationRequested();
            var last = i == tokens.Count - 1;
            yield return new StreamingChatMessageContent(AuthorRole.Assistant, tokens[i], metadata: last
                ? new Dictionary<string, object?> { ["PromptTokens"] = promptTokens, ["CompletionTokens"] = tokens.Count }
                : null);
        }
    }

    /// <summary>The reply, before it is cut into tokens.</summary>
    private static async Task<string> AnswerAsync(ChatHistory chatHistory, Kernel? kernel, CancellationToken cancellationToken)
    {
        var message = chatHistory.LastOrDefault(m => m.Role == AuthorRole.User)?.Content?.Trim() ?? "";
        var earlier = chatHistory.Where(m => m.Role == AuthorRole.User).Select(m => m.Content ?? "").SkipLast(1).ToList();
        var system = chatHistory.FirstOrDefault(m => m.Role == AuthorRole.System)?.Content ?? "";
        // What the summary in the system message kept comes before the turns given as they were.
        var summarized = SummaryLine().Matches(system).Select(m => m.Groups[1].Value.Trim()).ToList();
        if (AskedForFirstMessage().IsMatch(message))
        {
            return summarized.Concat(earlier).FirstOrDefault() is { } first
                ? $"Your first message in this session was: \"{first}\"."
                : "You have not said anything before in this session.";
        }

        if (AskedForEarlierMessages().IsMatch(message))
        {
            return earlier.Count == 0
                ? "You have not said anything before in this session."
                : $"Before this, you said: {string.Join(" | ", earlier.TakeLast(3).Select(e => $"\"{e}\""))}.";
        }

        if (kernel is not null && kernel.Plugins.TryGetPlugin("notes", out _))
        {
            if (Remember().Match(message) is { Success: true } remember)
            {
                var key = remember.Groups["key"].Value.Trim();
                await kernel.InvokeAsync("notes", "remember",
                    new KernelArguments { ["key"] = key, ["value"] = remember.Groups["value"].Value.Trim() }, cancellationToken);
                return $"Noted: {key}.";
            }

            if (ListNotes().IsMatch(message))
            {
                var list = await kernel.InvokeAsync("notes", "list", cancellationToken: cancellationToken);
                return $"Notes in this session: {list.GetValue<string>()}";
            }

            if (Recall().Match(message) is { Success: true } recall)
            {
                var value = await kernel.InvokeAsync("notes", "recall",
                    new KernelArguments { ["key"] = recall.Groups["key"].Value.Trim() }, cancellationToken);
                return value.GetValue<string>() ?? "";
            }
        }

        return $"You said: \"{message}\". This is reply {earlier.Count + 1} in this session.";
    }

    /// <summary>The user's messages of the old summary and of the turns to add (one line each in the transcript),
    /// each cut to 80 characters; beyond 40, or beyond <paramref name="maxChars"/>, the first 5 and the latest that fit.</summary>
    private static string Summarize(string transcript, int maxChars)
    {
        const string Header = "Earlier, the user said:";
        var said = SummaryLine().Matches(transcript).Select(m => m.Groups[1].Value.Trim())
            .Concat(TranscriptUserLine().Matches(transcript).Select(m => m.Groups[1].Value.Trim()))
            .Select(text => $"- {Workers.Core.Sessions.TextCut.Prefix(text, 80)}").ToList();
        while (said.Count > 6 && (said.Count > 40 || Header.Length + said.Sum(line => line.Length + 1) > maxChars))
        {
            said.RemoveAt(5);
        }

        return Header + "\n" + string.Join('\n', said);
    }

    private static List<string> Tokenize(string answer, int minTokens)
    {
        var tokens = answer.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select((w, i) => i == 0 ? w : " " + w).ToList();
        for (var i = 0; tokens.Count < minTokens; i++)
        {
            tokens.Add(" " + Filler[i % Filler.Length]);
        }

        return tokens;
    }

    private static int CountWords(string? text) =>
        string.IsNullOrEmpty(text) ? 0 : text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;

    [GeneratedRegex(@"^- (.*)$", RegexOptions.Multiline)]
    private static partial Regex SummaryLine();

    [GeneratedRegex(@"^user: (.*)$", RegexOptions.Multiline)]
    private static partial Regex TranscriptUserLine();

    [GeneratedRegex(@"\bwhat was my first (message|question)\b", RegexOptions.IgnoreCase)]
    private static partial Regex AskedForFirstMessage();

    [GeneratedRegex(@"#think=(\d{1,7})\b")]
    private static partial Regex Think();

    [GeneratedRegex(@"\bwhat did i (say|ask|write)\b|\bwhat have i (said|asked)\b", RegexOptions.IgnoreCase)]
    private static partial Regex AskedForEarlierMessages();

    [GeneratedRegex(@"^remember\s+(?:that\s+)?(?<key>[^:=]+?)\s*(?:=|:|\bis\b)\s*(?<value>.+)$", RegexOptions.IgnoreCase)]
    private static partial Regex Remember();

    [GeneratedRegex(@"^(?:recall|what is|what's)\s+(?<key>.+?)\??$", RegexOptions.IgnoreCase)]
    private static partial Regex Recall();

    [GeneratedRegex(@"\b(list (my )?notes|what do you remember)\b", RegexOptions.IgnoreCase)]
    private static partial Regex ListNotes();
}
