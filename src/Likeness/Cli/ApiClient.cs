using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Api;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Http.Resilience;
using Polly;

namespace Likeness.Cli;

/// <summary>A refusal from the API: its problem+json, or what the response said when it was not one.</summary>
internal sealed class ApiProblemException(int status, ProblemDetails problem)
    : Exception($"{status} {CodeOf(problem) ?? problem.Title}: {problem.Detail ?? problem.Title}{FieldsOf(problem)}")
{
    private static string? CodeOf(ProblemDetails problem) => problem.Extensions.TryGetValue("code", out var code) ? code?.ToString() : null;

    /// <summary>validation_failed's per-field messages, on the same line.</summary>
    private static string FieldsOf(ProblemDetails problem) =>
        problem.Extensions.TryGetValue("errors", out var errors) && errors is JsonElement { ValueKind: JsonValueKind.Object } fields
            ? " (" + string.Join("; ", fields.EnumerateObject().SelectMany(f => f.Value.EnumerateArray().Select(m => m.GetString()))) + ")"
            : "";
}

/// <summary>
/// The API as <c>likeness loras|generate</c> speak it: the request and response records the endpoints themselves declare,
/// on the API's JSON options; 429 and 503 are retried after their Retry-After, as are dropped connections.
/// </summary>
internal sealed class ApiClient(HttpClient http) : IDisposable
{
    public static ApiClient Create(ClientProfile profile)
    {
        var retry = new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddRetry(new HttpRetryStrategyOptions
            {
                MaxRetryAttempts = 3,
                Delay = TimeSpan.FromSeconds(1),
                BackoffType = DelayBackoffType.Exponential,
                ShouldRetryAfterHeader = true,
                MaxDelay = TimeSpan.FromMinutes(2),
                ShouldHandle = args => ValueTask.FromResult(args.Outcome switch
                {
                    { Exception: HttpRequestException } => true,
                    { Result.StatusCode: HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable } => true,
                    _ => false,
                }),
            })
            .Build();
        var http = new HttpClient(new ResilienceHandler(retry) { InnerHandler = new SocketsHttpHandler() })
        {
            BaseAddress = profile.Url,
            // A 100 MiB upload on a slow link, or a generation's 60 s wait, outlasts HttpClient's default 100 s.
            Timeout = TimeSpan.FromMinutes(30),
        };
        http.DefaultRequestHeaders.Add("X-API-Key", profile.ApiKey);
        return new ApiClient(http);
    }

    public void Dispose() => http.Dispose();

    /// <summary>Uploads the photos with the form's fields; <paramref name="sent"/> hears the bytes sent so far.</summary>
    public async Task<LoraCreated> CreateLoraAsync(LoraFormFields fields, IReadOnlyList<FileInfo> photos, IProgress<long> sent, CancellationToken ct)
    {
        using var form = new MultipartFormDataContent();
        foreach (var (name, value) in fields.Parts()) form.Add(new StringContent(value), name);
        foreach (var photo in photos)
        {
            // Seekable, so a retried request sends every part again from its start.
            var part = new StreamContent(photo.OpenRead());
            part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(part, LoraFormFields.ImagesField, photo.Name);
        }
        using var request = new HttpRequestMessage(HttpMethod.Post, "v2/loras") { Content = new CountingContent(form, sent) };
        request.Headers.Add(Idempotency.Header, Guid.NewGuid().ToString("N"));
        return await SendAsync<LoraCreated>(request, ct);
    }

    public Task<Page<LoraResponse>> ListLorasAsync(int limit, string? status, bool includeArchived, string? cursor, CancellationToken ct)
    {
        var query = $"v2/loras?limit={limit.ToString(CultureInfo.InvariantCulture)}&includeArchived={(includeArchived ? "true" : "false")}";
        if (status is not null) query += "&status=" + Uri.EscapeDataString(status);
        if (cursor is not null) query += "&cursor=" + Uri.EscapeDataString(cursor);
        return SendAsync<Page<LoraResponse>>(new HttpRequestMessage(HttpMethod.Get, query), ct);
    }

    public Task<LoraResponse> GetLoraAsync(string id, CancellationToken ct) =>
        SendAsync<LoraResponse>(new HttpRequestMessage(HttpMethod.Get, "v2/loras/" + Uri.EscapeDataString(id)), ct);

    public Task<LoraResponse> CancelLoraAsync(string id, CancellationToken ct) =>
        SendAsync<LoraResponse>(new HttpRequestMessage(HttpMethod.Post, $"v2/loras/{Uri.EscapeDataString(id)}/cancel"), ct);

    public Task<LoraResponse> ArchiveLoraAsync(string id, bool purge, CancellationToken ct) =>
        SendAsync<LoraResponse>(new HttpRequestMessage(HttpMethod.Delete, $"v2/loras/{Uri.EscapeDataString(id)}{(purge ? "?purge=true" : "")}"), ct);

    /// <summary>Waits as the API does (up to 60 s), then polls until the generation is COMPLETED or FAILED.</summary>
    public async Task<GenerationResponse> GenerateAsync(GenerateBody body, CancellationToken ct)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "v2/images/generate") { Content = JsonContent.Create(body, options: ApiJson.Options) };
        request.Headers.Add(Idempotency.Header, Guid.NewGuid().ToString("N"));
        var generation = await SendAsync<GenerationResponse>(request, ct);
        while (!Core.Data.GenerationStatus.IsTerminal(generation.Status))
        {
            await Task.Delay(TimeSpan.FromSeconds(1), ct);
            generation = await SendAsync<GenerationResponse>(new HttpRequestMessage(HttpMethod.Get, "v2/images/" + generation.Id), ct);
        }
        return generation;
    }

    /// <summary>Saves a signed image link to a file (the link needs no key).</summary>
    public async Task DownloadAsync(string url, string path, CancellationToken ct)
    {
        using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, ct);
        await EnsureSuccessAsync(response, ct);
        await using var file = File.Create(path);
        await response.Content.CopyToAsync(file, ct);
    }

    private async Task<T> SendAsync<T>(HttpRequestMessage request, CancellationToken ct)
    {
        using (request)
        using (var response = await http.SendAsync(request, ct))
        {
            await EnsureSuccessAsync(response, ct);
            return (await response.Content.ReadFromJsonAsync<T>(ApiJson.Options, ct))!;
        }
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        var status = (int)response.StatusCode;
        ProblemDetails? problem = null;
        if (response.Content.Headers.ContentType?.MediaType is ApiContract.ProblemJson or "application/json")
        {
            try { problem = await response.Content.ReadFromJsonAsync<ProblemDetails>(ApiJson.Options, ct); }
            catch (JsonException) { }
        }
        throw new ApiProblemException(status, problem ?? new ProblemDetails { Title = response.ReasonPhrase ?? "HTTP error", Status = status });
    }

    /// <summary>Another content's bytes, counted as they are written to the connection.</summary>
    private sealed class CountingContent : HttpContent
    {
        private readonly HttpContent _inner;
        private readonly IProgress<long> _sent;

        public CountingContent(HttpContent inner, IProgress<long> sent)
        {
            _inner = inner;
            _sent = sent;
            foreach (var header in inner.Headers) Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        // Serialized afresh at every attempt: the parts' files are sought back to their start.
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            _inner.CopyToAsync(new CountingStream(stream, _sent));

        protected override bool TryComputeLength(out long length)
        {
            length = _inner.Headers.ContentLength ?? -1;
            return length >= 0;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _inner.Dispose();
            base.Dispose(disposing);
        }
    }

    private sealed class CountingStream(Stream inner, IProgress<long> written) : Stream
    {
        private long _count;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _count; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            inner.Write(buffer, offset, count);
            written.Report(_count += count);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await inner.WriteAsync(buffer, cancellationToken);
            written.Report(_count += buffer.Length);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }
}
