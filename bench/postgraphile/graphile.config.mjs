// PostGraphile's configuration for the benchmark (the CLI reads this file from its directory).
import { extendSchema, gql } from "postgraphile/utils";
import { context, listen } from "postgraphile/grafast";

// Scenario 5 (subscription fan-out): PostGraphile has no subscription to inserted rows of its
// own, so this plugin adds the usual V5 one: `listen` on a NOTIFY topic (bench/subscriptions.py
// installs a trigger on the outbox that sends each recorded interaction's id) and the row
// loaded through the `interactions` resource for every subscriber.
const BenchFeedPlugin = extendSchema((build) => {
  const interactions = build.input.pgRegistry.pgResources.interactions;
  return {
    typeDefs: gql`
      type InteractionRecordedEvent {
        interaction: Interaction
      }
      extend type Subscription {
        interactionRecorded: InteractionRecordedEvent
      }
    `,
    objects: {
      Subscription: {
        plans: {
          interactionRecorded: {
            subscribePlan() {
              return listen(context().get("pgSubscriber"), "bench_interaction_recorded");
            },
            plan($id) {
              return $id;
            },
          },
        },
      },
      InteractionRecordedEvent: {
        plans: {
          interaction($id) {
            return interactions.get({ id: $id });
          },
        },
      },
    },
  };
});

export default {
  plugins: [BenchFeedPlugin],
  // Scenario 3 sends 1,000 createInteraction mutations in one document (~350 kB): above
  // grafserv's default 100 kB request limit. Scenario 5 needs websockets.
  grafserv: { maxRequestLength: 2_000_000, websockets: true },
};
