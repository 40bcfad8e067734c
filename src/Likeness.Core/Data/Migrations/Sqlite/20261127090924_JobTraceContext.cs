using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Likeness.Core.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class JobTraceContext : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "TraceParent",
                table: "jobs",
                type: "TEXT",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "TraceParent",
                table: "jobs");
        }
    }
}
