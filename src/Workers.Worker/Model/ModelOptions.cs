using System.ComponentModel.DataAnnotations;

namespace Workers.Worker.Model;

/// <summary>Which model answers and how; section <c>Llm</c>.</summary>
public sealed class ModelOptions
{
    public const string SectionName = "Llm";

    /// <summary><c>Offline</c> (deterministic, no network) or <c>OpenAI</c> (any OpenAI-compatible endpoint).</summary>
    [RegularExpression("^(Offline|OpenAI)$", ErrorMessage = "must be 'Offline' or 'OpenAI'")]
    public string Provider { get; set; } = "Offline";

    [StringLength(8000)]
    public string SystemPrompt { get; set; } = "You are a helpful assistant. Use the notes tools to remember facts for this session.";

    /// <summary>History handed to the model, newest turns first, until this many characters; older turns are dropped.</summary>
    [Range(0, 1_000_000)]
    public int HistoryBudgetChars { get; set; } = 12_000;

    /// <summary>A reply delta is published at least this often while text arrives...</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:00:10")]
    public TimeSpan DeltaInterval { get; set; } = TimeSpan.FromMilliseconds(40);

    /// <summary>...or as soon as this many characters are pending.</summary>
    [Range(1, 100_000)]
    public int DeltaMaxChars { get; set; } = 200;

    /// <summary>Longest a single model call may take before it counts as a (retried) timeout.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan CallTimeout { get; set; } = TimeSpan.FromMinutes(5);

    public OfflineModelOptions Offline { get; set; } = new();

    public OpenAIModelOptions OpenAI { get; set; } = new();
}
