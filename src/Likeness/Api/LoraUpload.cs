using System.Security.Cryptography;
using System.Text;
using Likeness.Core.Storage;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace Likeness.Api;

/// <summary>A multipart upload streamed to a private staging folder: form fields plus the image parts as files.</summary>
public sealed class LoraUpload : IDisposable
{
    public const long MaxImageBytes = 10L * 1024 * 1024;
    public const long MaxImagesTotalBytes = 100L * 1024 * 1024;
    public const long MaxBodyBytes = 101L * 1024 * 1024;
    private const int MaxFieldBytes = 64 * 1024;
    private const int MaxParts = 200;

    private LoraUpload(StagingFolder staging) => Staging = staging;

    /// <summary>The upload's locked folder; disposing the upload releases and removes it.</summary>
    public StagingFolder Staging { get; }
    private string Folder => Staging.Path;
    public Dictionary<string, string> Fields { get; } = new(StringComparer.Ordinal);
    public List<StagedFile> Files { get; } = [];
    /// <summary>Fields whose value passed <see cref="MaxFieldBytes"/> (not kept, only named): a validation error, not a malformed body.</summary>
    public HashSet<string> OverlongFields { get; } = new(StringComparer.Ordinal);
    /// <summary>Parts named 'images' that exceeded <see cref="MaxImageBytes"/> (not kept, only counted).</summary>
    public List<string> OversizedImages { get; } = [];
    public long ImageBytes { get; private set; }

    public sealed record StagedFile(string Path, string FileName, long Length, string Sha256Hex);

    public void Dispose() => Staging.Dispose();

    /// <summary>Thrown when the request is not a readable multipart form (400 malformed_multipart).</summary>
    public sealed class MalformedException(string message) : Exception(message);

    /// <summary>Thrown when the body passes <see cref="MaxBodyBytes"/> (413).</summary>
    public sealed class TooLargeException() : Exception("The request body is larger than 101 MiB.");

    /// <summary>Thrown when the body arrives slower than Kestrel's minimum data rate (a stalled upload; 408).</summary>
    public sealed class TooSlowException() : Exception("The request body arrived too slowly.");

    public static async Task<LoraUpload> ReadAsync(HttpRequest request, string stagingRoot, CancellationToken ct)
    {
        if (request.ContentLength > MaxBodyBytes) throw new TooLargeException();
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var contentType) ||
            !contentType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            throw new MalformedException("The body must be multipart/form-data.");
        var boundary = HeaderUtilities.RemoveQuotes(contentType.Boundary).Value;
        if (string.IsNullOrEmpty(boundary) || boundary.Length > 200) throw new MalformedException("The multipart boundary is missing or invalid.");

        LoraUpload upload;
        try { upload = new LoraUpload(StagingFolder.Create(stagingRoot)); }
        catch (Exception ex) when (StorageErrors.IsOutOfSpace(ex)) { throw new InsufficientStorageException(ex); }
        try
        {
            var body = new CountingStream(request.Body, MaxBodyBytes);
            var reader = new MultipartReader(boundary, body) { HeadersLengthLimit = 16 * 1024, BodyLengthLimit = null };
            var parts = 0;
            while (true)
            {
                MultipartSection? section;
                try { section = await reader.ReadNextSectionAsync(ct); }
                catch (IOException ex) { throw Unreadable(ex, body); }
                catch (InvalidDataException ex) { throw new MalformedException("The multipart body could not be read: " + ex.Message); }
                if (section is null) break;
                if (++parts > MaxParts) throw new MalformedException($"The form has more than {MaxParts} parts.");

                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition) ||
                    !disposition.DispositionType.Equals("form-data"))
                    throw new MalformedException("Every part needs a 'Content-Disposition: form-data' header.");
                var name = HeaderUtilities.RemoveQuotes(disposition.Name).Value ?? "";
                var isFile = disposition.FileName.HasValue || disposition.FileNameStar.HasValue;

                try
                {
                    if (name == "images") await upload.StageImageAsync(section, disposition, ct);
                    else if (isFile) await Drain(section.Body, ct);
                    else await upload.ReadFieldAsync(name, section, ct);
                }
                catch (IOException ex) { throw Unreadable(ex, body); }
            }
            if (body.Exceeded) throw new TooLargeException();
            return upload;
        }
        catch
        {
            upload.Dispose();
            throw;
        }
    }

    /// <summary>Why the body could not be read: over the size limit, too slow (Kestrel's 408), or not multipart.</summary>
    private static Exception Unreadable(IOException ex, CountingStream body) => ex switch
    {
        _ when body.Exceeded => new TooLargeException(),
        BadHttpRequestException { StatusCode: StatusCodes.Status408RequestTimeout } => new TooSlowException(),
        // A full disk is the server's trouble, not a malformed body (and its message names a server path).
        _ when StorageErrors.IsOutOfSpace(ex) => new InsufficientStorageException(ex),
        _ => new MalformedException("The multipart body could not be read: " + ex.Message),
    };

    private async Task ReadFieldAsync(string name, MultipartSection section, CancellationToken ct)
    {
        // The first value of a repeated field wins; repeats are refused by validation only for 'images'.
        if (Fields.ContainsKey(name) || OverlongFields.Contains(name))
        {
            await Drain(section.Body, ct);
            return;
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int n;
        while ((n = await section.Body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + n > MaxFieldBytes)
            {
                OverlongFields.Add(name);
                await Drain(section.Body, ct);
                return;
            }
            buffer.Write(chunk, 0, n);
        }
        Fields.Add(name, Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
    }

    private async Task StageImageAsync(MultipartSection section, ContentDispositionHeaderValue disposition, CancellationToken ct)
    {
        var fileName = HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value ?? "";
        var path = Path.Combine(Folder, $"{Files.Count + OversizedImages.Count:000}.upload");
        long length = 0;
        var oversized = false;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        // Unbuffered (the chunks are large): a write that fails fails here, not again when the file is closed.
        FileStream file;
        try { file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0, useAsync: true); }
        catch (IOException ex) { throw StagingFailed(ex); }
        await using (file)
        {
            var chunk = new byte[81920];
            int n;
            while ((n = await section.Body.ReadAsync(chunk, ct)) > 0)
            {
                length += n;
                if (length > MaxImageBytes) oversized = true;
                if (oversized) continue; // keep reading to learn the body's size, keep nothing
                sha.AppendData(chunk, 0, n);
                try { await file.WriteAsync(chunk.AsMemory(0, n), ct); }
                catch (IOException ex) { throw StagingFailed(ex); }
            }
        }
        ImageBytes += length;
        if (oversized)
        {
            File.Delete(path);
            OversizedImages.Add(fileName);
            return;
        }
        Files.Add(new StagedFile(path, fileName, length, Convert.ToHexStringLower(sha.GetHashAndReset())));
    }

    /// <summary>
    /// A failed write to the staging folder is the server's trouble, never a malformed body (and its message names a
    /// server path): a full disk is 507, anything else a 500.
    /// </summary>
    private static Exception StagingFailed(IOException error) =>
        StorageErrors.IsOutOfSpace(error) ? new InsufficientStorageException(error) : new InvalidOperationException("Staging an upload failed.", error);

    private static async Task Drain(Stream s, CancellationToken ct)
    {
        var chunk = new byte[81920];
        while (await s.ReadAsync(chunk, ct) > 0) { }
    }

    /// <summary>Counts what is read and stops at the limit, so an oversized body is never read to its end.</summary>
    private sealed class CountingStream(Stream inner, long limit) : Stream
    {
        private long _read;
        public bool Exceeded { get; private set; }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _read; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var n = await inner.ReadAsync(buffer, cancellationToken);
            _read += n;
            if (_read > limit)
            {
                Exceeded = true;
                throw new IOException("The request body exceeds the limit.");
            }
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }
}
