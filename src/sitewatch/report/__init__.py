"""What the analyst sees: ``overlay.png`` pictures and the self-contained HTML report."""
