using Microsoft.Extensions.FileProviders;

namespace Likeness.Hosting;

/// <summary>
/// The dashboard at <c>/app</c>: plain HTML, CSS and ES modules from <c>src/Likeness/Dashboard</c>, embedded in the
/// assembly so that <c>dotnet run</c>, the tests and a published binary serve the same files with nothing to build.
/// It is a client of the public <c>/v2</c> API and nothing else.
/// </summary>
public static class Dashboard
{
    public const string Path = "/app";

    // The API key lives in the page's session storage: the page may run only its own scripts and talk only to this origin.
    // Images may come from the public URL, which can be another host than the one the page was loaded from.
    private const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' blob: data: http: https:; " +
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    public static IApplicationBuilder UseDashboard(this IApplicationBuilder app)
    {
        var files = new EmbeddedFileProvider(typeof(Dashboard).Assembly, "Likeness.Dashboard");
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files, RequestPath = Path });
        return app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            RequestPath = Path,
            OnPrepareResponse = context =>
            {
                var headers = context.Context.Response.Headers;
                // No build step means no hashed file names: the browser revalidates (ETag) instead of keeping stale modules.
                headers.CacheControl = "no-cache";
                headers.ContentSecurityPolicy = ContentSecurityPolicy;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "no-referrer";
            },
        });
    }
}
