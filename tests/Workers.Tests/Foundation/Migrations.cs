using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Workers.Migrator;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Foundation;

/// <summary>The migrator applies migrations/ in order, records them, and stops at the first failure naming it.</summary>
public sealed class Migrations(ServicesFixture services)
{
    [Fact]
    public async Task Should_record_every_file_in_order_and_do_nothing_on_a_second_run()
    {
        await using var db = await services.CreateDatabaseAsync();
        var files = Directory.GetFiles(MigrationRunner.DefaultDirectory, "*.sql").Select(f => Path.GetFileName(f)!).Order().ToList();
        await using var connection = await db.OpenAdminAsync();
        await using var command = new NpgsqlCommand("SELECT scriptname FROM public.workers_migrations ORDER BY schemaversionsid", connection);
        var recorded = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                recorded.Add(reader.GetString(0));
            }
        }

        Assert.Equal(files, recorded);
        Assert.Empty(MigrationRunner.Apply(db.Admin, [db.App], MigrationRunner.DefaultDirectory, NullLogger.Instance));
        Assert.Equal("workers_migrator", await db.ScalarAsync<string>(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'workers.sessions'::regclass"));
    }

    [Fact]
    public async Task A_failing_migration_stops_the_run_with_its_file_name_and_the_database_error()
    {
        await using var db = await services.CreateDatabaseAsync();
        var directory = Directory.CreateTempSubdirectory("migrations-");
        try
        {
            foreach (var file in Directory.GetFiles(MigrationRunner.DefaultDirectory, "*.sql"))
            {
                File.Copy(file, Path.Combine(directory.FullName, Path.GetFileName(file)));
            }

            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "0900_broken.sql"), "SELECT * FROM workers.no_such_table;");
            await File.WriteAllTextAsync(Path.Combine(directory.FullName, "0901_after.sql"), "CREATE TABLE workers.never_created (id int);");
            var error = Assert.Throws<MigrationFailedException>(() =>
                MigrationRunner.Apply(db.Admin, [db.App], directory.FullName, NullLogger.Instance));
            Assert.Equal("migration 0900_broken.sql failed: 42P01: relation \"workers.no_such_table\" does not exist", error.Message);
            Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM pg_tables WHERE tablename = 'never_created'"));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
