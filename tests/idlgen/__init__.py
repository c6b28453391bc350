__all__ = ['ttypes', 'constants', 'Everything']
