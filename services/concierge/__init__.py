"""Concierge: Kubernetes-native platform for customer-support AI agents."""
