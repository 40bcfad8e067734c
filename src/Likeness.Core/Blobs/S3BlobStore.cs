using System.Net;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Likeness.Core.Ports;
using Microsoft.AspNetCore.WebUtilities;

namespace Likeness.Core.Blobs;

/// <summary>
/// Blobs in an S3-compatible bucket (AWS, MinIO, Ceph, s3rver…), streamed both ways. Configured as
/// <c>s3://BUCKET[/PREFIX]?endpoint=URL&amp;pathStyle=true&amp;region=R</c>; credentials come from the standard AWS
/// variables. Request checksums are sent only when required: small S3 servers refuse the SDK's chunked trailers.
/// </summary>
public sealed class S3BlobStore(IAmazonS3 s3, string bucket, string prefix) : IBlobStore, IDisposable
{
    public static S3BlobStore FromSetting(string setting)
    {
        var uri = new Uri(setting);
        if (uri.Scheme != "s3" || string.IsNullOrEmpty(uri.Host)) throw new ArgumentException($"'{setting}' is not s3://BUCKET?….");
        var query = QueryHelpers.ParseQuery(uri.Query);
        var config = new AmazonS3Config
        {
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            ForcePathStyle = query.TryGetValue("pathStyle", out var ps) && bool.TryParse(ps, out var path) && path,
        };
        if (query.TryGetValue("endpoint", out var endpoint)) config.ServiceURL = endpoint.ToString();
        if (query.TryGetValue("region", out var region)) config.AuthenticationRegion = region.ToString();
        else if (config.ServiceURL is null) config.RegionEndpoint = Amazon.RegionEndpoint.USEast1;
        return new S3BlobStore(new AmazonS3Client(config), uri.Host, uri.AbsolutePath.Trim('/'));
    }

    private string Key(string key) => prefix.Length == 0 ? key : $"{prefix}/{key}";

    public async Task PutAsync(string key, Stream content, CancellationToken cancellationToken)
    {
        // Plain (not aws-chunked) bodies: small S3 servers store a chunked body as it came, signatures and all.
        var request = new PutObjectRequest { BucketName = bucket, Key = Key(key), InputStream = content, AutoCloseStream = false, UseChunkEncoding = false };
        if (!content.CanSeek)
        {
            // S3 needs the length up front: spool an unseekable stream to a temporary file first.
            var tmp = Path.GetTempFileName();
            await using var spool = new FileStream(tmp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 81920, FileOptions.DeleteOnClose);
            await content.CopyToAsync(spool, cancellationToken);
            spool.Position = 0;
            request.InputStream = spool;
            await s3.PutObjectAsync(request, cancellationToken);
            return;
        }
        await s3.PutObjectAsync(request, cancellationToken);
    }

    public async Task<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            var response = await s3.GetObjectAsync(bucket, Key(key), cancellationToken);
            return new ResponseStream(response);
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound) { return null; }
    }

    public async Task<bool> ExistsAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            await s3.GetObjectMetadataAsync(bucket, Key(key), cancellationToken);
            return true;
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound) { return false; }
    }

    public async Task<IReadOnlyList<string>> ListAsync(string keyPrefix, CancellationToken cancellationToken)
    {
        var keys = new List<string>();
        var request = new ListObjectsV2Request { BucketName = bucket, Prefix = Key(keyPrefix) };
        ListObjectsV2Response response;
        do
        {
            response = await s3.ListObjectsV2Async(request, cancellationToken);
            keys.AddRange((response.S3Objects ?? []).Select(o => prefix.Length == 0 ? o.Key : o.Key[(prefix.Length + 1)..]));
            request.ContinuationToken = response.NextContinuationToken;
        } while (response.IsTruncated == true);
        keys.Sort(StringComparer.Ordinal);
        return keys;
    }

    public async IAsyncEnumerable<StoredBlob> EnumerateAsync(string keyPrefix,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var request = new ListObjectsV2Request { BucketName = bucket, Prefix = Key(keyPrefix) };
        ListObjectsV2Response response;
        do
        {
            response = await s3.ListObjectsV2Async(request, cancellationToken);
            foreach (var o in response.S3Objects ?? [])
            {
                yield return new StoredBlob(prefix.Length == 0 ? o.Key : o.Key[(prefix.Length + 1)..],
                    o.LastModified is { } at ? new DateTimeOffset(at.ToUniversalTime(), TimeSpan.Zero) : DateTimeOffset.MinValue);
            }
            request.ContinuationToken = response.NextContinuationToken;
        } while (response.IsTruncated == true);
    }

    /// <summary>
    /// Nothing to do: every write is one PutObject, which stores the whole object or nothing, so an interrupted write
    /// leaves no object behind (the spool file of an unseekable stream is deleted on close, or by the OS's temp cleaner).
    /// </summary>
    public Task<int> RemoveInterruptedWritesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken) => Task.FromResult(0);

    public async Task DeletePrefixAsync(string keyPrefix, CancellationToken cancellationToken)
    {
        var keys = await ListAsync(keyPrefix, cancellationToken);
        foreach (var batch in keys.Chunk(1000))
        {
            await s3.DeleteObjectsAsync(new DeleteObjectsRequest
            {
                BucketName = bucket,
                Objects = batch.Select(k => new KeyVersion { Key = Key(k) }).ToList(),
            }, cancellationToken);
        }
    }

    public void Dispose() => s3.Dispose();

    /// <summary>The object's body; disposing it releases the HTTP response.</summary>
    private sealed class ResponseStream(GetObjectResponse response) : Stream
    {
        private readonly Stream _inner = response.ResponseStream;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => response.ContentLength;
        public override long Position { get => _inner.Position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _inner.ReadAsync(buffer, cancellationToken);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _inner.ReadAsync(buffer, offset, count, cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing)
        {
            if (disposing) response.Dispose();
            base.Dispose(disposing);
        }
    }
}
