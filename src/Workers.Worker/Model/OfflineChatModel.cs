using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;

namespace Workers.Worker.Model;

/// <summary>
/// A deterministic model that needs no network. Its answer is built only from the history and message it is handed
/// (and the session's notes tool), so it shows what the worker loaded: it can tell what was said before in this
/// session, and nothing from any other. Notes requests go through the kernel, like a real model's tool calls.
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
        // Directives that let demos and tests stand in for a slow or broken provider; off unless enabled.
        if (offline.Directives == true && Think().Match(message) is { Success: true } think)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(int.Parse(think.Groups[1].Value, CultureInfo.InvariantCulture)), cancellationToken);
        }

        if (offline.Directives == true && message.Contains("#fail", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("the offline model was asked to fail (#fail)");
        }

        var answer = await AnswerAsync(chatHistory, kernel, cancellationToken);
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
