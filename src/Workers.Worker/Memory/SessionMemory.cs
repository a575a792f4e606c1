namespace Workers.Worker.Memory;

/// <summary>The stored summary of a session's older turns (row <c>workers.session_memory</c>, under the session's
/// row-level security). Turns after it go to the model as they were said.</summary>
/// <param name="ThroughTurn">The summary covers the session's turns 1 to this one.</param>
/// <param name="Summary">The model's text.</param>
/// <param name="Tokens">The summary's tokens as part of the system message, counted when it was written.</param>
public sealed record SessionMemory(long ThroughTurn, string Summary, int Tokens);

/// <summary>An earlier turn as the history load returns it.</summary>
/// <param name="TurnNo">Its number in the session (1 is the first).</param>
/// <param name="User">The user's message.</param>
/// <param name="Reply">The reply.</param>
/// <param name="Tokens">Counted at its commit; null for turns from before counts were kept (counted on load).</param>
/// <param name="Tools">The tool calls the model made in it, with their results as it saw them, in order.</param>
public sealed record HistoryTurn(long TurnNo, string User, string Reply, int? Tokens,
    IReadOnlyList<Workers.Worker.Tools.ToolCall>? Tools = null);

/// <summary>What a turn's <c>TurnStarted</c> tells the client about the history it sends.</summary>
/// <param name="ContextTokens">The prompt's estimated tokens.</param>
/// <param name="SummarizedThroughTurn">The turns the summary in the prompt covers (1 to this), or null for none.</param>
/// <param name="SummaryUpdated">This turn folds older turns into the summary first.</param>
public sealed record TurnMemory(int ContextTokens, long? SummarizedThroughTurn, bool SummaryUpdated);
