"""The sync engine: canonical entities, declarative mapping, dedupe, three-way merge, lean writes.

- :mod:`~shared.engine.canonical`: the seven canonical types, their dedupe configuration and
  the normalizers of natural keys (email, domain, phone) and names.
- :mod:`~shared.engine.mapping`: a stream's :class:`~adapters.base.spec.MappingSpec` compiled
  into a fast mapper (fields, transforms, links, derived records, hook, write-back).
- :mod:`~shared.engine.catalog`: the compiled mappings of every provider's streams and a
  stream's conflict policy and direction.
- :mod:`~shared.engine.merge`: the three-way field merge and the six conflict strategies.
- :mod:`~shared.engine.dedupe`: external id across containers, natural key, fuzzy match and
  merge proposals.
- :mod:`~shared.engine.pipeline`: one page through mapping, dedupe, conflict detection and one
  batched write per container (the lean write path).
- :mod:`~shared.engine.entities`: the entity side of a page: joins, merges, conflicts, pushes.
- :mod:`~shared.engine.admin`: the operator's view: entities with links and sources, local
  edits, conflicts and their resolution, splits, merge proposals.
"""
