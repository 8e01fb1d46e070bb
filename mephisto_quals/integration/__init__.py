"""Where Mephisto calls mephisto-quals: the blueprint mixin, the ``<type>_quals`` blueprints, the
shared-state fields and the gate installed for ``_quals`` runs.
"""
