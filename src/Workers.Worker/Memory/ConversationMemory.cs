using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using Workers.Worker.Model;
using Workers.Worker.Tools;

namespace Workers.Worker.Memory;

/// <summary>
/// What of a session's past a turn sends to the model, counted in tokens: the stored summary (in the system message),
/// then the turns after it as they were said. When the prompt would pass <see cref="ModelOptions.SummarizeAtPercent"/>
/// of the window, the oldest whole turns are folded into the summary by the model, down to
/// <see cref="ModelOptions.SummarizeToPercent"/>, so the next folds are many turns away. The new summary is stored with
/// the turn's commit, in the session's lane: computed once, never by two turns at a time.
/// </summary>
public sealed class ConversationMemory(IChatCompletionService model, ContextLimits limits, ModelOptions options)
{
    /// <summary>The memory of the default model.</summary>
    public ConversationMemory(IChatCompletionService model, IOptions<ModelOptions> options)
        : this(model, (options ?? throw new ArgumentNullException(nameof(options))).Value.Limits, options.Value)
    {
    }

    /// <summary>The system message of a summarisation call (the offline model recognises it).</summary>
    public const string Instructions =
        "Summarise the conversation below for the assistant's own memory. Keep every fact, name, number, decision and " +
        "open question, and what the user asked first; drop pleasantries. Write plain sentences or a list, no preamble.";

    private readonly ModelOptions _options = options;
    private readonly ContextLimits _limits = Warm(limits);

    /// <summary>Decides, from token counts only (no model call), what this turn sends and whether it folds turns.</summary>
    /// <param name="turns">The session's turns after the stored summary, oldest first.</param>
    /// <param name="memory">The stored summary, if any.</param>
    /// <param name="message">The user's new message.</param>
    /// <param name="systemPrompt">The session's own system prompt, or null for the deployment's.</param>
    /// <param name="toolTokens">The tool definitions the turn offers (MCP servers' schemas), sent with every request.</param>
    public MemoryPlan Plan(IReadOnlyList<HistoryTurn> turns, SessionMemory? memory, string message, string? systemPrompt = null,
        int toolTokens = 0)
    {
        ArgumentNullException.ThrowIfNull(turns);
        var limits = _limits;
        var sizes = turns.Select(t => t.Tokens ?? CountTurn(t.User, t.Reply, t.Tools)).ToList();
        var fixedPart = TokenCount.PerRequest + TokenCount.Message(limits.Encoding, systemPrompt ?? _options.SystemPrompt)
            + TokenCount.Message(limits.Encoding, message) + toolTokens;
        var prompt = fixedPart + (memory?.Tokens ?? 0) + sizes.Sum();
        if (prompt + limits.OutputReserve <= limits.ContextWindow * _options.SummarizeAtPercent / 100)
        {
            return new MemoryPlan(memory, [], turns, prompt, SummaryBudget, 0);
        }

        // Fold the oldest turns until the prompt, with a summary at its budget, is down to the target.
        var target = limits.ContextWindow * _options.SummarizeToPercent / 100;
        var folded = 0;
        var kept = sizes.Sum();
        while (folded < turns.Count && fixedPart + SummaryBudget + kept + limits.OutputReserve > target)
        {
            kept -= sizes[folded++];
        }

        return new MemoryPlan(memory, turns.Take(folded).ToList(), turns.Skip(folded).ToList(), fixedPart + SummaryBudget + kept,
            SummaryBudget, sizes.Take(folded).Sum());
    }

    /// <summary>The model's summary of the plan's old summary and the turns it folds. Its usage is the turn's.</summary>
    public async Task<(SessionMemory Memory, int PromptTokens, int CachedTokens, int CompletionTokens)> FoldAsync(MemoryPlan plan,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var transcript = new StringBuilder();
        if (plan.Memory is not null)
        {
            transcript.Append("Summary so far:\n").Append(plan.Memory.Summary).Append("\n\n");
        }

        transcript.Append("Turns to add:\n");
        foreach (var turn in plan.Fold)
        {
            // One line per message, so a summariser (the offline one too) can tell who said what.
            transcript.Append("user: ").Append(OneLine(turn.User)).Append('\n');
            foreach (var call in turn.Tools ?? [])
            {
                transcript.Append("tool ").Append(call.Tool).Append(": ").Append(OneLine(call.Result)).Append('\n');
            }

            transcript.Append("assistant: ").Append(OneLine(turn.Reply)).Append('\n');
        }

        var prompt = new ChatHistory(Instructions);
        prompt.AddUserMessage(transcript.ToString());
        var settings = new OpenAIPromptExecutionSettings { MaxTokens = plan.SummaryBudget, Temperature = 0 };
        var reply = (await model.GetChatMessageContentsAsync(prompt, settings, kernel: null, cancellationToken))[0];
        var summary = reply.Content?.Trim() ?? "";
        // A model that ignores MaxTokens must not grow the prompt it was asked to shrink: cut at twice the budget's
        // worth of characters (4 a token; English often runs more, so only a model far over its budget is cut).
        summary = Workers.Core.Sessions.TextCut.Prefix(summary, plan.SummaryBudget * 8);

        var usage = ModelUsage.From(reply.Metadata);
        var encoding = _limits.Encoding;
        return (new SessionMemory(plan.Fold[^1].TurnNo, summary, TokenCount.Message(encoding, SummarySection(plan.Fold[^1].TurnNo, summary))),
            usage?.Prompt ?? TokenCount.Of(encoding, transcript.ToString()), usage?.Cached ?? 0, usage?.Completion ?? TokenCount.Of(encoding, summary));
    }

    /// <summary>The chat the model gets: system prompt (with the summary), the kept turns, the new message.</summary>
    public ChatHistory Build(IReadOnlyList<HistoryTurn> kept, SessionMemory? memory, string message, string? systemPrompt = null)
    {
        ArgumentNullException.ThrowIfNull(kept);
        systemPrompt ??= _options.SystemPrompt;
        // The summary goes inside the one system message: some chat templates (vLLM, Ollama) accept only one, leading.
        var chat = new ChatHistory(memory is null
            ? systemPrompt
            : $"{systemPrompt}\n\n{SummarySection(memory.ThroughTurn, memory.Summary)}");
        foreach (var turn in kept)
        {
            chat.AddUserMessage(turn.User);
            foreach (var call in turn.Tools ?? [])
            {
                // Each call and its result as the model saw them; results as plain strings (rebuilt from our rows, they
                // are sent as they were, not encoded twice).
                var asked = new ChatMessageContent(AuthorRole.Assistant, content: null);
                asked.Items.Add(new FunctionCallContent(call.Function, call.Plugin, call.Id, Arguments(call.Arguments)));
                var answered = new ChatMessageContent(AuthorRole.Tool, content: null);
                answered.Items.Add(new FunctionResultContent(call.Function, call.Plugin, call.Id, call.Result));
                chat.Add(asked);
                chat.Add(answered);
            }

            chat.AddAssistantMessage(turn.Reply);
        }

        chat.AddUserMessage(message);
        return chat;
    }

    /// <summary>Tokens of a committed turn, its tool calls included, stored with it so later turns need not count it again.</summary>
    public int CountTurn(string user, string reply, IReadOnlyList<ToolCall>? tools = null) =>
        TokenCount.Turn(_limits.Encoding, user, reply)
        + (tools ?? []).Sum(c => TokenCount.Message(_limits.Encoding, $"{c.Plugin}-{c.Function} {c.Arguments}")
                                 + TokenCount.Message(_limits.Encoding, c.Result));

    /// <summary>Tokens of a piece of text in this model's encoding.</summary>
    public int CountText(string text) => TokenCount.Of(_limits.Encoding, text);

    private static KernelArguments Arguments(string json)
    {
        var arguments = new KernelArguments();
        foreach (var (name, value) in System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, System.Text.Json.JsonElement>>(json) ?? [])
        {
            arguments[name] = value;
        }

        return arguments;
    }

    /// <summary>How long a summary may be: a tenth of the window.</summary>
    private int SummaryBudget => _limits.ContextWindow / 10;

    public static string SummarySection(long throughTurn, string summary) =>
        $"Summary of this conversation's turns 1 to {throughTurn} (older than the messages below):\n{summary}";

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");

    // The vocabulary loads here, as the worker starts (about 200 ms), not in its first turns while they stream.
    private static ContextLimits Warm(ContextLimits limits)
    {
        TokenCount.Of(limits.Encoding, "");
        return limits;
    }
}

/// <summary>What a turn sends, and whether it first folds turns into a new summary.</summary>
/// <param name="Memory">The stored summary.</param>
/// <param name="Fold">The oldest turns, to fold into a new summary before the reply (none: no fold).</param>
/// <param name="Keep">The turns sent as they were said.</param>
/// <param name="PromptTokens">The prompt's estimated tokens (with the summary at its budget when it folds).</param>
/// <param name="SummaryBudget">The longest summary a fold may write, in tokens.</param>
/// <param name="FoldTokens">The folded turns' tokens (what the summarising call reads of them).</param>
public sealed record MemoryPlan(SessionMemory? Memory, IReadOnlyList<HistoryTurn> Fold, IReadOnlyList<HistoryTurn> Keep, int PromptTokens,
    int SummaryBudget, int FoldTokens);
