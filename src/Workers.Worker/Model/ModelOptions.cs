using System.ComponentModel.DataAnnotations;

namespace Workers.Worker.Model;

/// <summary>Which model answers and how; section <c>Llm</c>.</summary>
public sealed class ModelOptions : IValidatableObject
{
    public const string SectionName = "Llm";

    /// <summary><c>Offline</c> (deterministic, no network) or <c>OpenAI</c> (any OpenAI-compatible endpoint).</summary>
    [RegularExpression("^(Offline|OpenAI)$", ErrorMessage = "must be 'Offline' or 'OpenAI'")]
    public string Provider { get; set; } = "Offline";

    [StringLength(8000)]
    public string SystemPrompt { get; set; } = "You are a helpful assistant. Use the notes tools to remember facts for this session.";

    /// <summary>When a turn's prompt (system prompt, stored summary, earlier turns, the new message) plus the output
    /// reserve would pass this share of the context window, older turns are folded into the session's summary.</summary>
    [Range(10, 100)]
    public int SummarizeAtPercent { get; set; } = 90;

    /// <summary>How far a fold brings the prompt down (share of the context window), so it is not redone every turn.</summary>
    [Range(5, 95)]
    public int SummarizeToPercent { get; set; } = 60;

    /// <summary>The highest sampling temperature a session may set (0 to 2); a higher one is used as this.</summary>
    [Range(0.0, 2.0)]
    public double MaxTemperature { get; set; } = 2.0;

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

    /// <summary>The limits of the provider in use.</summary>
    public ContextLimits Limits => Provider == "OpenAI" ? OpenAI : Offline;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        var section = Provider;
        if (Limits.ContextWindow < 256)
        {
            yield return new ValidationResult("must be at least 256 tokens", [$"{section}:ContextWindow"]);
        }
        else if (Limits.OutputReserve < 1 || Limits.OutputReserve > Limits.ContextWindow / 2)
        {
            yield return new ValidationResult($"must be between 1 and half the context window ({Limits.ContextWindow / 2})",
                [$"{section}:OutputReserve"]);
        }

        if (Limits.Encoding is not ("o200k_base" or "cl100k_base"))
        {
            yield return new ValidationResult("must be 'o200k_base' or 'cl100k_base'", [$"{section}:Encoding"]);
        }

        if (SummarizeToPercent >= SummarizeAtPercent)
        {
            yield return new ValidationResult($"must be below SummarizeAtPercent ({SummarizeAtPercent})", [nameof(SummarizeToPercent)]);
        }
    }
}
