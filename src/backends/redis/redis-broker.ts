import type { Broker, ClaimOptions } from "../../ports/backend.js";
import { WakeUps } from "../../ports/wake-ups.js";
import type { ClaimedInvocation } from "../../ports/records.js";
import type { Redis } from "ioredis";
import { RedisUnreachableError, type RedisClient } from "./redis-client.js";

/**
 * The queue is a sorted set of claimable invocations scored by readyAt (ties in creation order);
 * a claim is one script. A claim whose reply was lost with the connection is "in doubt": its
 * token goes with the runner's next claim, which hands out again whatever it took and the runner
 * still holds at that attempt, so nothing is stranded under a live runner. They come back in the
 * state the next claim asks for: a claim to start starts those still PENDING and takes those it
 * already started; a plain claim takes only those still PENDING.
 *
 * Wake-ups come over pub/sub on a connection of their own, opened on the first subscribe.
 */
export class RedisBroker implements Broker {
  readonly #client: RedisClient;
  readonly #inDoubt = new Map<string, string[]>();
  readonly #wakeUps = new WakeUps();
  #subscriber: Redis | undefined;

  constructor(client: RedisClient) {
    this.#client = client;
  }

  async claim(runnerId: string, max: number, now: number, options?: ClaimOptions): Promise<ClaimedInvocation[]> {
    const earlier = this.#inDoubt.get(runnerId) ?? [];
    if (max <= 0 && earlier.length === 0) return [];
    this.#inDoubt.delete(runnerId);
    const token = this.#client.token();
    let reply: string[];
    try {
      reply = JSON.parse(
        (await this.#client.run("nencClaim", token, [
          runnerId,
          String(max),
          String(now),
          options?.start ? "1" : "0",
          ...earlier,
        ])) as string,
      ) as string[];
    } catch (error) {
      this.#inDoubt.set(runnerId, error instanceof RedisUnreachableError ? [...earlier, token] : earlier);
      throw error;
    }
    const claimed: ClaimedInvocation[] = [];
    for (let i = 0; i + 5 < reply.length; i += 6) {
      claimed.push({
        id: reply[i] as string,
        taskId: reply[i + 1] as string,
        args: reply[i + 2] as string,
        attempt: Number(reply[i + 3]),
        retries: Number(reply[i + 4]),
        parentId: reply[i + 5] || null,
      });
    }
    return claimed;
  }

  async queueLength(now: number): Promise<number> {
    const { keys } = this.#client;
    return this.#client.command((redis) => redis.zcount(keys.ready, "-inf", now));
  }

  subscribe(listener: () => void): () => void {
    const remove = this.#wakeUps.add(listener);
    this.#subscriber ??= this.#openSubscriber();
    return remove;
  }

  #openSubscriber(): Redis {
    const sub = this.#client.subscriber();
    let connectedBefore = false;
    sub.on("message", () => this.#notify());
    // Messages published while it was away are lost: after a reconnect, tell everyone to look.
    sub.on("ready", () => {
      if (connectedBefore) this.#notify();
      connectedBefore = true;
    });
    // Whatever was published before the subscription took effect was missed: look once it has.
    sub.subscribe(this.#client.keys.channel).then(
      () => this.#notify(),
      () => {},
    );
    return sub;
  }

  /** Wake listeners once per burst of messages. */
  #notify(): void {
    this.#wakeUps.wake();
  }

  close(): void {
    this.#subscriber?.disconnect();
    this.#subscriber = undefined;
    this.#wakeUps.clear();
  }
}
