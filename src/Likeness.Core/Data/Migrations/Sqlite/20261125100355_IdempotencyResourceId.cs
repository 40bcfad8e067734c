using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Likeness.Core.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class IdempotencyResourceId : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "ResourceId",
                table: "idempotency_keys",
                type: "TEXT",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ResourceId",
                table: "idempotency_keys");
        }
    }
}
