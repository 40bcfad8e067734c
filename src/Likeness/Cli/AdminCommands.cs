using System.CommandLine;
using Likeness.Core.Data;
using Likeness.Core.Teams;
using Likeness.Hosting;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Cli;

/// <summary>Operator verbs: <c>teams create</c>, <c>keys create|revoke</c>, <c>credits grant</c>.</summary>
internal static class AdminCommands
{
    public static Command Teams()
    {
        var name = new Option<string>("--name") { Description = "The team's name (unique).", Required = true };
        var credits = new Option<long>("--credits") { Description = "Starting credits (a grant in the ledger).", DefaultValueFactory = _ => 0 };
        var cap = new Option<int>("--max-concurrent-trainings") { Description = "LoRAs in PENDING|UPLOADING|TRAINING at once.", DefaultValueFactory = _ => 10 };
        var create = new Command("create", "Create a team and its first API key (printed once, alone on the last line).") { name, credits, cap };
        create.SetAction((r, ct) => WithDatabase(r, ct, async db =>
        {
            var (team, key) = await TeamAdmin.CreateTeamAsync(db, r.GetValue(name)!, r.GetValue(credits), r.GetValue(cap), TimeProvider.System, ct);
            Console.WriteLine($"team: {team.Id}");
            Console.WriteLine(key);
        }));
        return new Command("teams", "Manage teams.") { create };
    }

    public static Command Keys()
    {
        var team = new Option<string>("--team") { Description = "Team id or name.", Required = true };
        var create = new Command("create", "Create another API key for a team (printed once, alone on the last line).") { team };
        create.SetAction((r, ct) => WithDatabase(r, ct, async db =>
        {
            var (t, key) = await TeamAdmin.CreateKeyAsync(db, r.GetValue(team)!, TimeProvider.System, ct);
            Console.WriteLine($"team: {t.Id}");
            Console.WriteLine(key);
        }));
        var keyArg = new Argument<string>("key") { Description = "The API key, or its id (key_…)." };
        var revoke = new Command("revoke", "Revoke an API key; LoRAs it created keep verifying their webhooks.") { keyArg };
        revoke.SetAction((r, ct) => WithDatabase(r, ct, async db =>
        {
            if (!await TeamAdmin.RevokeKeyAsync(db, r.GetValue(keyArg)!, TimeProvider.System, ct))
                throw new ArgumentException("No active key matched.");
            Console.WriteLine("revoked");
        }));
        return new Command("keys", "Manage API keys.") { create, revoke };
    }

    public static Command Credits()
    {
        var team = new Option<string>("--team") { Description = "Team id or name.", Required = true };
        var amount = new Option<long>("--amount") { Description = "Credits to add.", Required = true };
        var grant = new Command("grant", "Add credits to a team (a grant in its ledger).") { team, amount };
        grant.SetAction((r, ct) => WithDatabase(r, ct, async db =>
        {
            var t = await TeamAdmin.GrantAsync(db, r.GetValue(team)!, r.GetValue(amount), TimeProvider.System, ct);
            Console.WriteLine($"team: {t.Id}");
            Console.WriteLine($"credits: {t.Credits}");
        }));
        return new Command("credits", "Manage credits.") { grant };
    }

    private static async Task<int> WithDatabase(ParseResult result, CancellationToken ct, Func<LikenessDb, Task> action)
    {
        var options = LikenessHost.Configure(new ConfigurationBuilder(), CommonOptions.Overrides(result));
        var services = new ServiceCollection().AddLikenessDatabase(options.DatabaseSetting).BuildServiceProvider();
        await using (services)
        {
            using var scope = services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<LikenessDb>();
            await DatabaseSetup.MigrateAsync(db, ct);
            try { await action(db); }
            catch (ArgumentException ex)
            {
                await Console.Error.WriteLineAsync("error: " + ex.Message);
                return 2;
            }
        }
        return 0;
    }
}
