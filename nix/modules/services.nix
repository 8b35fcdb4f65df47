# Per-service persistence: `zpersist.services.<name>` (being written).
{ ... }:
{
}
