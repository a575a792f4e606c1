using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using Workers.Core.Hosting;
using Workers.Migrator;
using Workers.Notifier.Auth;
using Workers.Notifier.Operations;
using Workers.Notifier.Sending;
using Workers.Worker.Model;
using Workers.Worker.Ordering;
using Workers.Worker.Retention;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Workers.Tests.Operations;

/// <summary>
/// No Docker engine runs in CI, so compose/docker-compose.yml and the Dockerfiles are checked against the code: every
/// setting a service gets is one its program reads, every image builds a project that exists and runs it as non-root
/// with a health check, each host logs in as itself (never as an admin), secrets have no defaults, and a stopping worker
/// gets longer than its drain timeout.
/// </summary>
public sealed partial class Containers_and_compose
{
    private static readonly string Compose = Path.Combine(Repository.Root, "compose", "docker-compose.yml");

    private static readonly Dictionary<string, Type[]> Sections = new()
    {
        [RabbitMqOptions.SectionName] = [typeof(RabbitMqOptions)],
        [WorkerOptions.SectionName] = [typeof(WorkerOptions), typeof(TopologyOptions)],
        [ModelOptions.SectionName] = [typeof(ModelOptions)],
        [RetentionOptions.SectionName] = [typeof(RetentionOptions)],
        [AuthOptions.SectionName] = [typeof(AuthOptions)],
        [LimitOptions.SectionName] = [typeof(LimitOptions)],
        [OperatorOptions.SectionName] = [typeof(OperatorOptions)],
    };

    /// <summary>What each program reads: options sections, connection strings, plain keys.</summary>
    private static readonly Dictionary<string, (string[] Sections, string[] ConnectionStrings, string[] Keys)> Reads = new()
    {
        ["Workers.Worker"] = ([RabbitMqOptions.SectionName, WorkerOptions.SectionName, ModelOptions.SectionName, RetentionOptions.SectionName],
            [ConnectionStrings.Postgres], ["Urls"]),
        ["Workers.Notifier"] = ([RabbitMqOptions.SectionName, TopologyOptions.SectionName, AuthOptions.SectionName, LimitOptions.SectionName,
                OperatorOptions.SectionName],
            [ConnectionStrings.Postgres, ConnectionStrings.PostgresOperator], ["Urls", "AllowedHosts"]),
        ["Workers.Migrator"] = ([RabbitMqOptions.SectionName, TopologyOptions.SectionName],
            [ConnectionStrings.PostgresAdmin, ConnectionStrings.PostgresWorker, ConnectionStrings.PostgresNotifier, ConnectionStrings.PostgresOperator,
                ConnectionStrings.Postgres],
            [.. BrokerLoginSetup.ConfigurationKeys.Select(k => k.Replace(":", "__", StringComparison.Ordinal)), "Sessions__IdleTtl"]),
    };

    [Fact]
    public void Every_service_gets_only_settings_its_program_reads_and_each_host_logs_in_as_itself()
    {
        var services = Services();
        Assert.Superset(new HashSet<string> { "postgres", "rabbitmq", "migrate-database", "broker-logins", "broker-topology", "worker", "notifier" },
            services.Keys.ToHashSet());
        foreach (var (name, service) in services.Where(s => s.Value.ContainsKey("build")))
        {
            var program = Program(service);
            var reads = Reads[program];
            foreach (var (key, value) in Environment(service))
            {
                Assert.True(IsRead(key, reads), $"service {name} sets {key}, which {program} does not read");
                if (Secret().IsMatch(value))
                {
                    Assert.DoesNotMatch(@"\$\{[A-Z_]*(PASSWORD|KEY)[A-Z_]*:-[^}]", value);
                }
            }
        }

        var worker = Environment(services["worker"]);
        var notifier = Environment(services["notifier"]);
        Assert.Equal(BrokerLoginSetup.DefaultLogin("Worker"), worker["RabbitMq__Username"]);
        Assert.Equal(BrokerLoginSetup.DefaultLogin("Notifier"), notifier["RabbitMq__Username"]);
        Assert.Contains("Username=workers_worker;", worker["ConnectionStrings__Postgres"], StringComparison.Ordinal);
        Assert.Contains("Username=workers_notifier;", notifier["ConnectionStrings__Postgres"], StringComparison.Ordinal);
        Assert.All(new[] { worker, notifier }.SelectMany(e => e.Values), v => Assert.DoesNotContain("ADMIN_PASSWORD", v, StringComparison.Ordinal));
        Assert.Equal("Production", worker["ASPNETCORE_ENVIRONMENT"]);
        Assert.Equal("Production", notifier["ASPNETCORE_ENVIRONMENT"]);

        // The setup steps: each a verb the migrator knows, and the hosts wait for all of them.
        Assert.False(services["migrate-database"].ContainsKey("command"));
        Assert.Equal(["logins"], Command(services["broker-logins"]));
        Assert.Equal(["topology"], Command(services["broker-topology"]));
        var migratorSource = File.ReadAllText(Path.Combine(Repository.Root, "src", "Workers.Migrator", "Program.cs"));
        Assert.Contains("args.FirstOrDefault() == \"logins\"", migratorSource, StringComparison.Ordinal);
        Assert.Contains("args.FirstOrDefault() == \"topology\"", migratorSource, StringComparison.Ordinal);
        foreach (var host in new[] { "worker", "notifier" })
        {
            var dependsOn = (Dictionary<object, object>)services[host]["depends_on"];
            foreach (var setup in new[] { "migrate-database", "broker-logins", "broker-topology" })
            {
                Assert.Equal("service_completed_successfully", ((Dictionary<object, object>)dependsOn[setup])["condition"]);
            }
        }

        // A stopping worker finishes its turns (drain timeout) before the engine kills it.
        var drain = TimeSpan.Parse(worker["Workers__DrainTimeout"], CultureInfo.InvariantCulture);
        Assert.True(Duration((string)services["worker"]["stop_grace_period"]) > drain, "stop_grace_period must exceed Workers__DrainTimeout");
    }

    [Theory]
    [InlineData("Workers.Worker", true)]
    [InlineData("Workers.Notifier", true)]
    [InlineData("Workers.Migrator", false)]
    public void Each_image_builds_its_project_and_runs_it_as_a_non_root_user(string project, bool host)
    {
        var dockerfile = File.ReadAllText(Path.Combine(Repository.Root, "src", project, "Dockerfile"));
        Assert.Contains($"dotnet publish src/{project}/{project}.csproj", dockerfile, StringComparison.Ordinal);
        Assert.Contains($"ENTRYPOINT [\"dotnet\", \"{project}.dll\"]", dockerfile, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^FROM mcr\.microsoft\.com/dotnet/aspnet:10\.0-noble-chiseled$", dockerfile);
        Assert.Matches(@"(?m)^USER app$", dockerfile);
        foreach (Match copy in CopiedPaths().Matches(dockerfile))
        {
            var path = copy.Groups[1].Value;
            Assert.True(File.Exists(Path.Combine(Repository.Root, path)) || Directory.Exists(Path.Combine(Repository.Root, path)),
                $"{project}/Dockerfile copies {path}, which does not exist");
        }

        if (host)
        {
            Assert.Contains($"CMD [\"dotnet\", \"{project}.dll\", \"probe\", \"http://127.0.0.1:8080/health/ready\"]", dockerfile, StringComparison.Ordinal);
            Assert.Contains("ENV Urls=http://+:8080", dockerfile, StringComparison.Ordinal);
        }
    }

    private static bool IsRead(string key, (string[] Sections, string[] ConnectionStrings, string[] Keys) reads)
    {
        if (key.StartsWith("OTEL_", StringComparison.Ordinal) || key is "DOTNET_ENVIRONMENT" or "ASPNETCORE_ENVIRONMENT" || reads.Keys.Contains(key))
        {
            return true;
        }

        var path = key.Split("__");
        if (path[0] == "ConnectionStrings")
        {
            return path.Length == 2 && reads.ConnectionStrings.Contains(path[1]);
        }

        return reads.Sections.Contains(path[0]) && Sections[path[0]].Any(type => HasProperty(type, path[1..]));
    }

    /// <summary>Whether an options type has the nested property <paramref name="path"/> (binding is case-insensitive).</summary>
    private static bool HasProperty(Type type, string[] path)
    {
        if (path.Length == 0)
        {
            return true;
        }

        var property = type.GetProperty(path[0], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
        return property is not null && (path.Length == 1 || HasProperty(property.PropertyType, path[1..]));
    }

    private static string Program(Dictionary<object, object> service)
    {
        var dockerfile = (string)((Dictionary<object, object>)service["build"])["dockerfile"];
        var project = dockerfile.Split('/')[1];
        Assert.True(File.Exists(Path.Combine(Repository.Root, dockerfile)), $"{dockerfile} does not exist");
        Assert.True(File.Exists(Path.Combine(Repository.Root, "src", project, $"{project}.csproj")), $"no project {project}");
        return project;
    }

    private static Dictionary<string, Dictionary<object, object>> Services()
    {
        using var reader = new StreamReader(Compose);
        // Merge keys (<<: *hosts) resolved as Docker Compose does.
        var root = new DeserializerBuilder().Build().Deserialize<Dictionary<object, object>>(new MergingParser(new Parser(reader)));
        return ((Dictionary<object, object>)root["services"]).ToDictionary(s => (string)s.Key, s => (Dictionary<object, object>)s.Value);
    }

    private static Dictionary<string, string> Environment(Dictionary<object, object> service) =>
        service.TryGetValue("environment", out var environment)
            ? ((Dictionary<object, object>)environment).ToDictionary(e => (string)e.Key, e => (string)e.Value)
            : [];

    private static List<string> Command(Dictionary<object, object> service) => [.. ((List<object>)service["command"]).Cast<string>()];

    private static TimeSpan Duration(string compose) => compose.EndsWith('s')
        ? TimeSpan.FromSeconds(int.Parse(compose[..^1], CultureInfo.InvariantCulture))
        : compose.EndsWith('m') ? TimeSpan.FromMinutes(int.Parse(compose[..^1], CultureInfo.InvariantCulture)) : TimeSpan.Zero;

    [GeneratedRegex(@"\$\{[A-Z_]*(PASSWORD|KEY)")]
    private static partial Regex Secret();

    [GeneratedRegex(@"(?m)^COPY (?!--from)(\S+)")]
    private static partial Regex CopiedPaths();
}
