using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Likeness.Core.Data;

/// <summary>
/// A unique-key conflict that the code expects and answers, such as a trigger word taken by a concurrent creation
/// between the check and the insert. EF Core logs every failed command and SaveChanges as an error with its stack
/// trace before the exception reaches the code that handles it; inside <see cref="Expect"/> the host's logging drops
/// those two entries (<see cref="ShouldLog"/>), and the handler says what happened at its own level instead. Any
/// other failure in the scope still surfaces: the handler rethrows what is not a unique-key conflict.
/// </summary>
public static class HandledConflicts
{
    private static readonly AsyncLocal<bool> Expected = new();

    /// <summary>Until disposed, in this flow of execution, EF's command and SaveChanges errors are not logged.</summary>
    public static Scope Expect()
    {
        Expected.Value = true;
        return default;
    }

    public readonly struct Scope : IDisposable
    {
        public void Dispose() => Expected.Value = false;
    }

    /// <summary>The host's filter for EF Core's categories: false for their errors inside <see cref="Expect"/>.</summary>
    public static bool ShouldLog(string? category, LogLevel level) =>
        !(Expected.Value && level >= LogLevel.Error
            && (category == DbLoggerCategory.Database.Command.Name || category == DbLoggerCategory.Update.Name));

    public static bool IsUniqueViolation(DbUpdateException e) => e.InnerException is
        SqliteException { SqliteExtendedErrorCode: 2067 or 1555 } // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
        or PostgresException { SqlState: PostgresErrorCodes.UniqueViolation };
}
