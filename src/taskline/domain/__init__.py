"""Pure models and rules: tasks, agents, status transitions, validation. Imports nothing of ours."""
