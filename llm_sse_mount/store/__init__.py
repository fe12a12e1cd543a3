"""Stream stores: where frames live between the producer and the readers (memory, Redis)."""
