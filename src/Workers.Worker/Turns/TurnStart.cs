using Workers.Worker.Memory;

namespace Workers.Worker.Turns;

/// <summary>What the first transaction of a turn found and reserved.</summary>
/// <param name="AlreadyProcessed">The inbox says this request already has its turn: ack it, run nothing.</param>
/// <param name="TurnSeq">The session's turn counter as read; the commit succeeds only if it is unchanged.</param>
/// <param name="FirstSeq">The first event number of the block this attempt reserved.</param>
/// <param name="Attempts">How often this request was started, this time included.</param>
/// <param name="History">The session's turns after its stored summary, oldest first.</param>
/// <param name="Memory">The session's stored summary of its older turns, if it has one.</param>
/// <param name="Settings">The session's own system prompt and temperature (null: the deployment's).</param>
/// <param name="Replaces">For a request that replaces the session's last turn: that turn's number, request id and text.</param>
public sealed record TurnStart(
    bool AlreadyProcessed, long TurnSeq, long FirstSeq, int Attempts, IReadOnlyList<HistoryTurn> History, SessionMemory? Memory,
    SessionSettings Settings, (long TurnNo, Guid RequestId, string UserText)? Replaces = null);

/// <summary>What a session sets for its own turns; null: the deployment's.</summary>
/// <param name="SystemPrompt">The system prompt.</param>
/// <param name="Temperature">The sampling temperature.</param>
/// <param name="Model">The name of the model (<see cref="Workers.Worker.Model.ChatModels"/>).</param>
/// <param name="Tools">The tool servers whose tools the turns offer (<see cref="Workers.Worker.Tools.McpToolServers"/>);
/// null: the deployment's default set.</param>
public sealed record SessionSettings(string? SystemPrompt, float? Temperature, string? Model = null, IReadOnlyList<string>? Tools = null);
