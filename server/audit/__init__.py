"""The site audit: find images a page publishes without a usable text alternative (WCAG 2.2 SC 1.1.1)."""
