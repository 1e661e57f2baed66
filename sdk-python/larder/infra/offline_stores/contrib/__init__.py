"""Sources of Feast's contributed offline stores (``feast.infra.offline_stores.contrib``)."""
