def navigation(request):
    """Values every page's navigation bar shows."""
    return {}
