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

    /// <summary>More models a session may choose by name (<c>Llm:Models:NAME:BaseUrl</c>, <c>:Model</c>, <c>:ApiKey</c>,
    /// limits and prices as for <c>Llm:OpenAI</c>): OpenAI-compatible endpoints such as OpenAI, Azure OpenAI, Ollama or
    /// vLLM, or the offline model (<c>:Provider</c> <c>Offline</c>). A session without a model uses the default one
    /// (<see cref="Provider"/>).</summary>
    public Dictionary<string, OpenAIModelOptions> Models { get; set; } = [];

    /// <summary>The limits of the default model.</summary>
    public ContextLimits Limits => Provider == "OpenAI" ? OpenAI : Offline;

    /// <summary>The largest context window of all the models: how much history one turn may need to read.</summary>
    public int LargestContextWindow => Models.Values.Select(m => m.ContextWindow).Append(Limits.ContextWindow).Max();

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        foreach (var error in Check(Limits, Provider))
        {
            yield return error;
        }

        foreach (var (name, model) in Models)
        {
            var section = $"Models:{name}";
            if (!Workers.Contracts.ChatLimits.IsModelName(name) || name == ChatModels.DefaultName)
            {
                yield return new ValidationResult(
                    $"'{name}' cannot name a model: a letter or digit, then up to 63 letters, digits, '.', '_' or '-', and not '{ChatModels.DefaultName}'",
                    [section]);
            }

            if (model.Provider is not ("OpenAI" or "Offline"))
            {
                yield return new ValidationResult("must be 'OpenAI' or 'Offline'", [$"{section}:Provider"]);
                continue;
            }

            if (model.Provider == "Offline")
            {
                // The offline model: Llm:Offline's limits, nothing to reach.
                continue;
            }

            if (string.IsNullOrWhiteSpace(model.Model))
            {
                yield return new ValidationResult("is missing", [$"{section}:Model"]);
            }

            if (!Uri.TryCreate(model.BaseUrl, UriKind.Absolute, out _))
            {
                yield return new ValidationResult("must be an absolute URL", [$"{section}:BaseUrl"]);
            }

            foreach (var error in Check(model, section))
            {
                yield return error;
            }
        }

        if (SummarizeToPercent >= SummarizeAtPercent)
        {
            yield return new ValidationResult($"must be below SummarizeAtPercent ({SummarizeAtPercent})", [nameof(SummarizeToPercent)]);
        }
    }

    private static IEnumerable<ValidationResult> Check(ContextLimits limits, string section)
    {
        if (limits.ContextWindow < 256)
        {
            yield return new ValidationResult("must be at least 256 tokens", [$"{section}:ContextWindow"]);
        }
        else if (limits.OutputReserve < 1 || limits.OutputReserve > limits.ContextWindow / 2)
        {
            yield return new ValidationResult($"must be between 1 and half the context window ({limits.ContextWindow / 2})",
                [$"{section}:OutputReserve"]);
        }

        if (limits.Encoding is not ("o200k_base" or "cl100k_base"))
        {
            yield return new ValidationResult("must be 'o200k_base' or 'cl100k_base'", [$"{section}:Encoding"]);
        }
    }
}
