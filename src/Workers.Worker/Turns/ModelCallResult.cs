using Workers.Worker.Memory;

namespace Workers.Worker.Turns;

/// <summary>How the model call of a turn ended, and what it cost.</summary>
/// <param name="Status">A <c>TurnStatus</c>: complete, cancelled or failed.</param>
/// <param name="ErrorCode">Why it did not complete, or null.</param>
/// <param name="PromptTokens">As the provider reported them (0 when it did not), a summarisation call's included.</param>
/// <param name="CompletionTokens">As reported, else estimated from the reply's length; a summarisation call's included.</param>
/// <param name="FirstTokenMs">From the turn's start to the first token, 0 when none came.</param>
/// <param name="TurnTokens">The turn's message and reply as history for later turns (counted with the model's encoding).</param>
/// <param name="Memory">A new summary this turn wrote (stored with its commit), or null.</param>
/// <param name="Usage">Who answered and what it cost.</param>
public sealed record ModelCallResult(string Status, string? ErrorCode, int PromptTokens, int CompletionTokens, double FirstTokenMs,
    int TurnTokens, SessionMemory? Memory, TurnUsage Usage);

/// <summary>Which provider and model answered a turn, its cached prompt tokens and its cost.</summary>
/// <param name="Provider">The configured provider (<c>offline</c>, <c>openai</c>).</param>
/// <param name="Model">The model's name.</param>
/// <param name="CachedTokens">Prompt tokens the provider served from its cache.</param>
/// <param name="CostMicros">In micro-dollars, from the provider's configured prices.</param>
public sealed record TurnUsage(string Provider, string Model, int CachedTokens, long CostMicros);
