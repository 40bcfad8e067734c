using System.Net;
using Amazon.S3;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Likeness.Core.Storage;

/// <summary>Tells "the server's storage is full" apart from other failures, whichever store raised it.</summary>
public static class StorageErrors
{
    private const int Enospc = 28;    // Linux, macOS: no space left on device
    private const int Edquot = 122;   // Linux: disk quota exceeded
    private const int MacEdquot = 69; // macOS: disk quota exceeded
    private const int WindowsDiskFull = unchecked((int)0x80070070);       // ERROR_DISK_FULL
    private const int WindowsHandleDiskFull = unchecked((int)0x80070027); // ERROR_HANDLE_DISK_FULL
    private const int SqliteFull = 13;                                    // SQLITE_FULL
    private const string PostgresDiskFull = "53100";                      // disk_full

    /// <summary>True when <paramref name="error"/>, or any exception inside it, says the storage has no room left.</summary>
    public static bool IsOutOfSpace(Exception? error)
    {
        for (var e = error; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case IOException io when io.HResult is Enospc or Edquot or WindowsDiskFull or WindowsHandleDiskFull
                                         || (OperatingSystem.IsMacOS() && io.HResult == MacEdquot):
                case SqliteException { SqliteErrorCode: SqliteFull }:
                case PostgresException { SqlState: PostgresDiskFull }:
                case AmazonS3Exception { StatusCode: HttpStatusCode.InsufficientStorage }:
                    return true;
                case AggregateException aggregate when aggregate.InnerExceptions.Any(IsOutOfSpace):
                    return true;
            }
        }
        return false;
    }
}

/// <summary>The storage had no room for what a request wanted to keep; nothing of it was kept (507 insufficient_storage).</summary>
public sealed class InsufficientStorageException(Exception inner)
    : Exception("The server's storage is full.", inner);
