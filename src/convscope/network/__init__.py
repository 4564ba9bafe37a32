"""convscope.network"""
