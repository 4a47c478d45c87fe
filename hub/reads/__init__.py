"""What the resolvers and the compiled read path share: paging, ordering, filter compilation.

Plain values in, SQLAlchemy out: no GraphQL types here. The resolvers hand over Strawberry input
objects (they match the protocols of ``hub.reads.filters`` by their attributes), the compiled
path hands over graphql-core's coerced values behind the same attributes, and renders the
expressions this package builds into its own SQL text.
"""
