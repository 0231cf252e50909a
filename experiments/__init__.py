"""Running, measuring, reporting and vetting BubbleGym experiments."""
