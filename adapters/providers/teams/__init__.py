"""Microsoft Teams: Graph `callRecords` change notifications; participants from `participants_v2`."""
