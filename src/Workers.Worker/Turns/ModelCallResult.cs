namespace Workers.Worker.Turns;

/// <summary>How the model call of a turn ended, and what it cost.</summary>
/// <param name="Status">A <c>TurnStatus</c>: complete, cancelled or failed.</param>
/// <param name="ErrorCode">Why it did not complete, or null.</param>
/// <param name="PromptTokens">As the provider reported them (0 when it did not).</param>
/// <param name="CompletionTokens">As reported, else estimated from the reply's length.</param>
/// <param name="FirstTokenMs">From the turn's start to the first token, 0 when none came.</param>
public sealed record ModelCallResult(string Status, string? ErrorCode, int PromptTokens, int CompletionTokens, double FirstTokenMs);
