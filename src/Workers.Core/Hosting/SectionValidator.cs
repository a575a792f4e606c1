using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Workers.Core.Hosting;

/// <summary>Data-annotation validation whose failures name the configuration key (<c>Workers:Partitions: ...</c>).</summary>
public sealed class SectionValidator<T>(string section) : IValidateOptions<T> where T : class
{
    public ValidateOptionsResult Validate(string? name, T options)
    {
        var results = new List<ValidationResult>();
        if (Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true))
        {
            return ValidateOptionsResult.Success;
        }

        return ValidateOptionsResult.Fail(results.Select(r =>
            $"{section}:{string.Join(",", r.MemberNames)} {r.ErrorMessage?.Replace("The field ", "", StringComparison.Ordinal)}"));
    }
}
