using System.Text.Json;
using System.Text.Json.Nodes;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Jobs;

namespace Likeness.Core.Loras;

/// <summary>Writes the outbox row and its delivery job for a LoRA's terminal event, inside the caller's transaction.</summary>
public static class LoraWebhookEvents
{
    public static Task EnqueueAsync(LikenessDb db, Lora lora, DateTime now, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(lora.WebhookUrl)) return Task.CompletedTask;
        var completed = lora.Status == LoraStatus.Ready;
        var eventType = completed ? "completed" : "failed";
        if (!lora.WebhookEvents.Split(',', StringSplitOptions.TrimEntries).Contains(eventType)) return Task.CompletedTask;

        var payload = new JsonObject
        {
            ["event"] = eventType,
            ["id"] = lora.Id,
            ["status"] = lora.Status,
            ["imageCount"] = lora.ImageCount,
            ["name"] = lora.Name,
            ["triggerWord"] = completed ? lora.TriggerWord : null,
            ["metadata"] = lora.MetadataJson is null ? new JsonObject() : JsonNode.Parse(lora.MetadataJson),
            ["completedAt"] = Timestamps.Format(lora.CompletedAt ?? now),
        };
        if (!completed) payload["error"] = new JsonObject { ["code"] = lora.ErrorCode, ["message"] = lora.ErrorMessage };

        var message = new WebhookMessage
        {
            Id = Ids.NewWebhookMessageId(),
            LoraId = lora.Id,
            TeamId = lora.TeamId,
            EventType = eventType,
            Url = lora.WebhookUrl,
            PayloadJson = payload.ToJsonString(new JsonSerializerOptions { WriteIndented = false }),
            SecretHash = lora.CreatorKeyHash,
            State = "pending",
            CreatedAt = now,
        };
        db.WebhookMessages.Add(message);
        JobQueue.Enqueue(db, JobQueues.Webhook, message.Id, now);
        return Task.CompletedTask;
    }
}
