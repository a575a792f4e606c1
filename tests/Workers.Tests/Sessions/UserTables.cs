using Npgsql;

namespace Workers.Tests.Sessions;

/// <summary>Reads the catalog: every table of schema <c>workers</c> with an <c>owner_id</c> column holds user data.</summary>
public static class UserTables
{
    public static async Task<IReadOnlyList<string>> ListAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'owner_id' AND NOT a.attisdropped
            WHERE n.nspname = 'workers' AND c.relkind = 'r' ORDER BY 1
            """, connection);
        var tables = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            tables.Add(reader.GetString(0));
        }

        return tables;
    }
}
