namespace Workers.Notifier.Operations;

/// <summary>
/// The operator's admin API (<c>/admin</c>); section <c>Operator</c>. On when <c>ConnectionStrings:PostgresOperator</c>
/// (the <c>workers_operator</c> login) is set; then the broker's management API is read with this login, which needs
/// the <c>management</c> tag and may have no permission on the virtual host (<c>^$</c>: it sees the queues' depths,
/// never a message). <c>Workers.Migrator logins</c> creates it as <c>workers-monitor</c>.
/// </summary>
public sealed class OperatorOptions
{
    public const string SectionName = "Operator";

    public string ManagementUsername { get; set; } = "workers-monitor";

    public string ManagementPassword { get; set; } = "";
}
