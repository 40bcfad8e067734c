using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Likeness.Tests.Infrastructure;

/// <summary>One log entry as a provider sees it: its structured properties and those of every scope around it.</summary>
public sealed record CapturedLog(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception,
    IReadOnlyDictionary<string, object?> Properties, IReadOnlyDictionary<string, object?> ScopeProperties)
{
    public object? this[string name] => Properties.TryGetValue(name, out var v) ? v : ScopeProperties.GetValueOrDefault(name);
    public override string ToString() => $"{Level} {Category}: {Message}{(Exception is null ? "" : " — " + Exception.GetType().Name + ": " + Exception.Message)}";
}

/// <summary>
/// An <see cref="ILoggerProvider"/> that keeps every entry (at any level the host's filters let through) with its
/// structured properties and scopes, for tests that assert what the service logs.
/// </summary>
public sealed class LogCapture : ILoggerProvider, ISupportExternalScope
{
    private readonly ConcurrentQueue<CapturedLog> _entries = new();
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

    public IReadOnlyList<CapturedLog> Entries => [.. _entries];

    public string Dump() => string.Join('\n', Entries);

    /// <summary>Registers this capture with a host's logging (pass as <c>services:</c> to <see cref="LikenessServer.StartAsync"/>).</summary>
    public void AddTo(IServiceCollection services) => services.AddSingleton<ILoggerProvider>(this);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    public void Dispose() { }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => owner._scopes.Push(state);

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var scoped = new Dictionary<string, object?>();
            owner._scopes.ForEachScope((scope, into) =>
            {
                if (scope is IEnumerable<KeyValuePair<string, object?>> pairs)
                    foreach (var (k, v) in pairs) into[k] = v;
            }, scoped);
            owner._entries.Enqueue(new CapturedLog(category, logLevel, eventId, formatter(state, exception), exception, Properties(state), scoped));
        }

        private static Dictionary<string, object?> Properties<TState>(TState state) =>
            state is IEnumerable<KeyValuePair<string, object?>> pairs ? pairs.ToDictionary(p => p.Key, p => p.Value) : [];
    }
}
